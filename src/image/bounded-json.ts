/**
 * JSON received from a registry (manifests, indexes, token responses), parsed with bounds: the size is capped by
 * the reader, and the nesting here. V8's JSON.parse itself copes with deep nesting, but the object it builds
 * then overflows the stack of whatever walks it recursively (JSON.stringify in a log line or an output, a
 * structured clone): "Maximum call stack size exceeded", far from the cause. Real OCI documents nest about five
 * levels deep.
 */
import { OperationError } from '../errors.js';

export const MAX_JSON_DEPTH = 64;

/** The deepest nesting of arrays and objects in `text`, stopping early once past `limit`. */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return max;
}

/** Refuses a received document nesting deeper than MAX_JSON_DEPTH; `what` starts the message. */
export function checkNesting(text: string, what: string): void {
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new OperationError(`${what} nests deeper than ${MAX_JSON_DEPTH} levels; refused`);
  }
}

/** JSON.parse of a received document, with checkNesting first. */
export function parseReceivedJson(text: string, what: string): unknown {
  checkNesting(text, what);
  return JSON.parse(text) as unknown;
}
