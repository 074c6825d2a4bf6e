/**
 * The kmod tools (modprobe, modinfo, depmod), each behind a tiny interface. modprobe's output is streamed into
 * the log line by line (docs/kmod.md, load step 6); a failure is one line naming the command and modprobe's own complaint.
 */
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
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

/** Calls onLine for every line of a stream (LF or CRLF), the last one even without a newline. */
function eachLine(stream: Readable, onLine: (line: string) => void): void {
  stream.setEncoding('utf8');
  let partial = '';
  stream.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    for (const line of lines) onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  });
  stream.on('end', () => {
    if (partial) onLine(partial);
  });
}

/**
 * Runs a tool, streaming its output into the log; never throws for a non-zero exit, only for "cannot start".
 * node:child_process rather than execa here: this is the path of every cache-hit load, which otherwise imports
 * execa (~270 KB bundled, a dozen more of Node's own modules) for three short-lived children (docs/cache.md,
 * "Cold start", round 4).
 */
export async function runTool(
  bin: string,
  args: string[],
  opts: { log: Logger; tool: string; signal?: AbortSignal; quiet?: boolean; level?: 'info' | 'debug' },
): Promise<CommandResult> {
  const lines: string[] = [];
  const onLine = (stream: string) => (line: string) => {
    lines.push(line);
    if (!opts.quiet) opts.log[opts.level ?? 'info']({ tool: opts.tool, stream }, line);
  };
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }>((resolve) => {
    const sub = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    eachLine(sub.stdout, onLine('stdout'));
    eachLine(sub.stderr, onLine('stderr'));
    sub.once('error', (error: NodeJS.ErrnoException) => {
      // an abort also arrives here, after the child was sent SIGTERM; 'close' still follows once it is gone
      if (error.name !== 'AbortError') resolve({ error });
    });
    // 'close', not 'exit': every line of both pipes has been read by then
    sub.once('close', (code, signal) => resolve({ code, signal }));
  });
  if ('error' in ended) {
    if (ended.error.code === 'ENOENT') throw new OperationError(`${opts.tool}: cannot run '${bin}': not found`);
    throw new OperationError(`${opts.tool}: cannot run '${bin}': ${ended.error.code ?? ended.error.message.split('\n', 1)[0]}`);
  }
  if (opts.signal?.aborted) throw new OperationError(`${opts.tool} was interrupted`);
  if (ended.signal) return { exitCode: 128, lines: [...lines, `killed by ${ended.signal}`] };
  return { exitCode: ended.code ?? 128, lines };
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
