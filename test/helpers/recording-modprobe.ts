// Typed access to the recording modprobe (recording-modprobe.mjs): where it is, the environment it needs, and
// the argv it recorded.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const recordingModprobePath = join(dirname(fileURLToPath(import.meta.url)), 'recording-modprobe.mjs');

/** The env for a process that runs the recording modprobe against a host root, logging to logFile. */
export function recordingModprobeEnv(hostRoot: string, logFile: string, extra: Record<string, string> = {}): Record<string, string> {
  return { RECORDING_MODPROBE_HOST_ROOT: hostRoot, RECORDING_MODPROBE_LOG: logFile, ...extra };
}

/** Every argv the recording modprobe was called with, in order ([] when it never ran). */
export async function recordedArgv(logFile: string): Promise<string[][]> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { argv: string[] }).argv);
}
