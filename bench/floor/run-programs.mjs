// What a cache-hit `kmod load` runs, for row d)'s floors: `<modprobe> -v -d <dir> <module>`, then
// `modinfo -F srcversion <ko>`, each awaited.
import { spawn } from 'node:child_process';

export async function runLoadPrograms([modprobe, dir, module, ko]) {
  const run = (bin, args) => new Promise((resolve, reject) => {
    spawn(bin, args, { stdio: 'ignore' }).on('error', reject).on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${bin} exited ${code}`))));
  });
  await run(modprobe, ['-v', '-d', dir, module]);
  await run('modinfo', ['-F', 'srcversion', ko]);
}
