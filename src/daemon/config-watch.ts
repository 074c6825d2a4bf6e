/**
 * Notices when the config file's content changes. A KMM worker pod's config is a downward-API volume: kubelet
 * writes a new timestamped directory and atomically swaps the `..data` symlink, so `config.yaml` (itself a
 * symlink through `..data`) never sees a write of its own — watching the file would miss it. So the DIRECTORY
 * is watched (the swap is a rename there), events are debounced, and the content is compared; `check()` lets
 * the daemon's periodic tick catch anything inotify missed (e.g. the directory itself replaced).
 */
import { watch, type FSWatcher } from 'node:fs';
import { readConfigText } from '../config/module-config.js';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';

export interface ConfigWatcher {
  /** compares the content now; calls onChange when it differs from the last seen */
  check(): Promise<void>;
  close(): void;
}

export function watchConfigFile(
  file: string,
  initialText: string,
  onChange: (text: string) => void,
  opts: { log: Logger; debounceMs?: number },
): ConfigWatcher {
  const digest = (s: string) => createHash('sha256').update(s).digest('hex');
  let last = digest(initialText);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const check = async () => {
    if (closed) return;
    const text = await readConfigText(file).catch((err: NodeJS.ErrnoException) => {
      // mid-swap or removed: keep the current module; the next event or tick will read it again
      opts.log.debug({ file, err: err.message }, 'config file not readable right now');
      return undefined;
    });
    if (text === undefined || closed) return;
    const d = digest(text);
    if (d === last) return;
    last = d;
    opts.log.info({ file }, 'config file changed');
    onChange(text);
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), { persistent: false }, () => {
      clearTimeout(timer);
      timer = setTimeout(() => void check(), opts.debounceMs ?? 100);
    });
    watcher.on('error', (err) => opts.log.warn({ err: err.message }, 'watching the config directory failed; relying on periodic checks'));
  } catch (err) {
    opts.log.warn({ err: (err as Error).message }, 'cannot watch the config directory; relying on periodic checks');
  }

  return {
    check,
    close() {
      closed = true;
      clearTimeout(timer);
      watcher?.close();
    },
  };
}
