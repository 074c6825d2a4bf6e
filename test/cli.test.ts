// src/cli.ts is a module: importing it builds and runs nothing; bin/kmm-worker.js calls its main().
import t from 'tap';

t.test('importing the CLI module runs no command', async (t) => {
  const before = process.exitCode;
  const written: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => (written.push(String(chunk)), true)) as typeof process.stdout.write;
  let cli: typeof import('../src/cli.js');
  try {
    cli = await import('../src/cli.js');
  } finally {
    process.stdout.write = write;
  }
  t.type(cli.main, 'function');
  t.equal(process.exitCode, before, 'no exit code set');
  t.same(written, [], 'nothing printed');
});
