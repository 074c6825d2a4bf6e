/**
 * A `.ko` as the kernel receives it: read and decompressed (.ko.gz, .ko.zst in-process; .ko.xz through `xz -dc`,
 * since Node has no xz decoder), then its signature trailer and ELF read. A file that does not parse is one
 * OperationError naming it.
 */
import { readFile } from 'node:fs/promises';
import zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { OperationError, oneLine } from '../errors.js';
import { readModuleElf, ElfFormatError, type ModuleElf } from './elf.js';
import { readModuleSignature, SignatureFormatError, type ModuleSignature } from './signature.js';

export interface KoFile {
  path: string;
  signature: ModuleSignature;
  elf: ModuleElf;
}

/** `name` decides the compression by its ending. */
async function decompressed(path: string, bytes: Buffer): Promise<Buffer> {
  if (path.endsWith('.gz')) return zlib.gunzipSync(bytes);
  if (path.endsWith('.zst')) return zlib.zstdDecompressSync(bytes);
  if (path.endsWith('.xz')) return xzDecompressed(bytes);
  return bytes;
}

/** `xz -dc` on a pipe (node:child_process, not execa: this runs on the path of every load; see runners.ts). */
function xzDecompressed(bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const xz = spawn('xz', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    xz.stdout.on('data', (b: Buffer) => out.push(b));
    xz.stderr.on('data', (b: Buffer) => err.push(b));
    xz.once('error', () => reject(new Error('cannot run xz')));
    xz.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      // xz names itself: "xz: (stdin): Unexpected end of input"
      else reject(new Error(Buffer.concat(err).toString().trim() || `xz exited with ${code ?? 'a signal'}`));
    });
    // xz stops reading at bad input and says why on stderr, which 'close' reports; the EPIPE here adds nothing
    xz.stdin.on('error', () => {});
    xz.stdin.end(bytes);
  });
}

export async function readKoFile(path: string): Promise<KoFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new OperationError(`cannot read module ${path}: ${(err as NodeJS.ErrnoException).code ?? oneLine(err)}`, { cause: err });
  }
  return koFromBytes(path, bytes);
}

/** A module's bytes as stored (compressed as `fileName` ends), named `path` in messages. */
export async function koFromBytes(path: string, bytes: Buffer, fileName = path): Promise<KoFile> {
  let image: Buffer;
  try {
    image = await decompressed(fileName, bytes);
  } catch (err) {
    throw new OperationError(`cannot read module ${path}: ${(err as Error).message.split('\n', 1)[0]}`, { cause: err });
  }
  try {
    // the signature trailer sits after the ELF image, so it is read first and the ELF parsed without it
    const signature = readModuleSignature(image);
    return { path, signature, elf: readModuleElf(image.subarray(0, signature.elfLength)) };
  } catch (err) {
    if (err instanceof SignatureFormatError) throw new OperationError(`module ${path} has a corrupt signature: ${err.message}`);
    if (err instanceof ElfFormatError) throw new OperationError(`module ${path} is not a valid kernel module: ${err.message}`);
    throw err;
  }
}
