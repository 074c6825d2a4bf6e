/**
 * The kmod tools (modprobe, modinfo, depmod), each behind a tiny interface. modprobe's output is streamed into
 * the log line by line (docs/kmod.md, load step 6); a failure is one line naming the command and modprobe's own complaint.
 */
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { execa } from 'execa';
import type { Logger } from '../log.js';
import { OperationError } from '../errors.js';

export interface CommandResult {
  exitCode: number;
  /** stdout and stderr lines, in arrival order */
  lines: string[];
}

export interface ModprobeRunner {
  /** runs modprobe with exactly these arguments; throws OperationError on a non-zero exit */
  run(args: string[]): Promise<void>;
}

export interface ModinfoRunner {
  /** `modinfo -F srcversion <ko>`; undefined when the module has none */
  srcversion(koPath: string): Promise<string | undefined>;
}

export interface DepmodRunner {
  /** `depmod -b <root> <kver>`: writes modules.dep and friends under root */
  generate(root: string, kernelVersion: string): Promise<void>;
}

/** Quotes an argv for display, the way a shell user would type it. */
export function shellQuote(argv: string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' ');
}

function pipeLines(stream: Readable | null, onLine: (line: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on('line', onLine);
    rl.on('close', resolve);
  });
}

/** Runs a tool, streaming its output into the log; never throws for a non-zero exit, only for "cannot start". */
export async function runTool(
  bin: string,
  args: string[],
  opts: { log: Logger; tool: string; signal?: AbortSignal; quiet?: boolean; level?: 'info' | 'debug' },
): Promise<CommandResult> {
  const lines: string[] = [];
  const sub = execa(bin, args, {
    reject: false,
    stdin: 'ignore',
    buffer: false,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    env: { LC_ALL: 'C' },
  });
  const onLine = (stream: string) => (line: string) => {
    lines.push(line);
    if (!opts.quiet) opts.log[opts.level ?? 'info']({ tool: opts.tool, stream }, line);
  };
  const [, , result] = await Promise.all([
    pipeLines(sub.stdout, onLine('stdout')),
    pipeLines(sub.stderr, onLine('stderr')),
    sub,
  ]);
  if (result.exitCode === undefined) {
    const code = (result.cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT') throw new OperationError(`${opts.tool}: cannot run '${bin}': not found`);
    if (result.isCanceled) throw new OperationError(`${opts.tool} was interrupted`);
    if (result.signal) return { exitCode: 128, lines: [...lines, `killed by ${result.signal}`] };
    throw new OperationError(`${opts.tool}: cannot run '${bin}': ${(result.shortMessage ?? '').split('\n', 1)[0]}`);
  }
  return { exitCode: result.exitCode, lines };
}

function lastMeaningfulLine(lines: string[]): string {
  const errorLine = [...lines].reverse().find((l) => /FATAL|ERROR|error/i.test(l));
  return (errorLine ?? lines.at(-1) ?? 'no output').trim();
}

/** Pass no signal to leave modprobe uninterrupted (the flows stop between steps instead). */
export class ExecModprobe implements ModprobeRunner {
  constructor(
    private readonly bin: string,
    private readonly log: Logger,
    private readonly signal?: AbortSignal,
  ) {}
  async run(args: string[]): Promise<void> {
    this.log.info({ argv: [this.bin, ...args] }, `running ${shellQuote(['modprobe', ...args])}`);
    const r = await runTool(this.bin, args, { log: this.log, tool: 'modprobe', ...(this.signal ? { signal: this.signal } : {}) });
    if (r.exitCode !== 0) {
      throw new OperationError(`${shellQuote(['modprobe', ...args])} failed (exit ${r.exitCode}): ${lastMeaningfulLine(r.lines)}`);
    }
  }
}

/** The dry-run modprobe: prints the command line it would run. */
export class PlanModprobe implements ModprobeRunner {
  constructor(private readonly out: Writable) {}
  async run(args: string[]): Promise<void> {
    this.out.write(`run ${shellQuote(['modprobe', ...args])}\n`);
  }
}

export class ExecModinfo implements ModinfoRunner {
  constructor(
    private readonly bin: string,
    private readonly log: Logger,
  ) {}
  async srcversion(koPath: string): Promise<string | undefined> {
    const r = await runTool(this.bin, ['-F', 'srcversion', koPath], { log: this.log, tool: 'modinfo', quiet: true });
    if (r.exitCode !== 0) {
      throw new OperationError(`modinfo ${koPath} failed (exit ${r.exitCode}): ${lastMeaningfulLine(r.lines)}`);
    }
    return r.lines.join('').trim() || undefined;
  }
}

export class ExecDepmod implements DepmodRunner {
  constructor(
    private readonly bin: string,
    private readonly log: Logger,
  ) {}
  async generate(root: string, kernelVersion: string): Promise<void> {
    const args = ['-b', root, kernelVersion];
    this.log.info({ argv: [this.bin, ...args] }, `modules.dep is missing; running ${shellQuote(['depmod', ...args])}`);
    // depmod warns about files a kmod image never has (modules.order, modules.builtin): debug, not info
    const r = await runTool(this.bin, args, { log: this.log, tool: 'depmod', level: 'debug' });
    if (r.exitCode !== 0) {
      throw new OperationError(`${shellQuote(['depmod', ...args])} failed (exit ${r.exitCode}): ${lastMeaningfulLine(r.lines)}`);
    }
  }
}
