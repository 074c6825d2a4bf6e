/** Durations as flags give them ("7d", "1h30m"): `image store prune --older-than`, `--timeout`. */
import { UsageError } from './errors.js';

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "7d", "12h", "1h30m", "0s" → milliseconds; anything else is a UsageError naming the flag. */
export function parseDuration(value: string, flag = '--older-than'): number {
  const re = /(\d+)([smhdw])/gy;
  let ms = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value)) !== null) {
    ms += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (value === '' || matched !== value.length) {
    throw new UsageError(`${flag} '${value}' is not a duration like 7d, 12h, 30m, 1h30m or 0s`);
  }
  return ms;
}
