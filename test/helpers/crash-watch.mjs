/**
 * Loaded into every test process (package.json: tap.node-arg). No command may end in an unhandled 'error'
 * event, rejection or exception (GUIDE), and a test that only checks the exit code or the stdout of a CLI run
 * would not notice one printed on the side. So this watches what every Node child process of a test prints
 * (whichever helper spawned it: execa, execFile or spawn; not the *Sync variants, which no CLI test uses), and fails the test file at its end when any of
 * them printed Node's words for a crash. It only listens to the 'data' events the consumer reads anyway, so
 * no stream changes its flow.
 */
import { ChildProcess } from 'node:child_process';
import path from 'node:path';

// Node's own words for an unhandled 'error' event or rejection, and the line it ends every fatal exception with
const CRASH = /Unhandled|uncaughtException|^Node\.js v\d+\.\d+\.\d+$/m;
const seen = [];

function watch(stream, command) {
  if (!stream) return;
  let tail = '';
  let found = false;
  const emit = stream.emit;
  stream.emit = function (event, ...args) {
    if (event === 'data' && !found) {
      const text = tail + String(args[0]);
      const m = CRASH.exec(text);
      if (m) {
        const line = text.slice(text.lastIndexOf('\n', m.index) + 1).split('\n', 1)[0];
        seen.push({ command, line });
        found = true;
      } else tail = text.slice(-200);
    }
    return emit.call(this, event, ...args);
  };
}

const spawn = ChildProcess.prototype.spawn;
ChildProcess.prototype.spawn = function (options) {
  const result = spawn.call(this, options);
  const file = options?.file ?? '';
  if (/^node(js)?(\d+)?$/.test(path.basename(file)) || file === process.execPath) {
    const command = (options.args ?? []).slice(1).join(' ').slice(0, 300);
    watch(this.stdout, command);
    watch(this.stderr, command);
  }
  return result;
};

/** For the watcher's own test: what was seen, and a way to forget it. */
globalThis.kmmCrashWatch = { seen, clear: () => seen.splice(0) };

process.on('exit', (code) => {
  if (seen.length === 0) return;
  for (const { command, line } of seen) {
    process.stderr.write(`crash-watch: a child process printed "${line}" (node ${command})\n`);
  }
  if (code === 0) process.exitCode = 1;
});
