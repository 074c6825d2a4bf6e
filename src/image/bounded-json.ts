/**
 * JSON received from a registry (manifests, indexes, token responses), parsed with bounds: the size is capped by
 * the reader, and the nesting here. V8's JSON.parse itself copes with deep nesting, but the object it builds
 * then overflows the stack of whatever walks it recursively (JSON.stringify in a log line or an output, a
 * structured clone): "Maximum call stack size exceeded", far from the cause. Real OCI documents nest about five
 * levels deep. The scanner is bounded-read.ts's jsonDepth, shared with every other JSON bound.
 */
import { OperationError } from '../errors.js';
import { jsonDepth, MAX_JSON_DEPTH } from '../bounded-read.js';

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
