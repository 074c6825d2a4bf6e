/**
 * A `.ko` as the kernel receives it: read and decompressed (.ko.gz, .ko.zst in-process; .ko.xz through `xz -dc`,
 * since Node has no xz decoder), then its signature trailer and ELF read. A file that does not parse is one
 * OperationError naming it.
 */
import { readFile } from 'node:fs/promises';
import zlib from 'node:zlib';
import { execa } from 'execa';
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
  if (path.endsWith('.xz')) {
    const r = await execa('xz', ['-dc'], { input: bytes, encoding: 'buffer', reject: false, stripFinalNewline: false });
    if (r.exitCode !== 0) throw new Error(r.failed && r.exitCode === undefined ? 'cannot run xz' : `xz: ${Buffer.from(r.stderr).toString().trim()}`);
    return Buffer.from(r.stdout);
  }
  return bytes;
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
