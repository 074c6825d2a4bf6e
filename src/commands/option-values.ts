/** Parsers of flag values shared by several commands; a bad value is a UsageError (exit 2). */
import { UsageError } from '../errors.js';

/** `a,b` (repeatable): the names, trimmed, empty ones dropped */
export const list = (v: string, prev: string[] = []) => prev.concat(v.split(',').map((s) => s.trim()).filter(Boolean));

export function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a positive whole number, got '${v}'`);
    return n;
  };
}
