/** Test data for the bench's images, written once into .cache/bench/. */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

const MiB = 1024 * 1024;

/**
 * Writes `bytes` to a file in 4 MiB chunks. texty: 16 symbols per byte, which deflate and zstd about halve,
 * like binaries and libraries; otherwise incompressible.
 */
export async function writeData(file: string, bytes: number, texty: boolean): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const out = createWriteStream(file);
  for (let done = 0; done < bytes; ) {
    const n = Math.min(4 * MiB, bytes - done);
    const chunk = randomBytes(n);
    if (texty) for (let i = 0; i < n; i++) chunk[i] = 0x61 + (chunk[i]! & 0x0f);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    done += n;
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
}
