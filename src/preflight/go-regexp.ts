/**
 * KMM matches kernelMappings[].regexp with Go's RE2 (`regexp.MatchString`: unanchored). JavaScript's RegExp
 * reads the same syntax for everything kernel patterns use; the few RE2 spellings it lacks are translated:
 * a leading `(?flags)` group (i, m, s), `(?P<name>`, `\A` and `\z`.
 */
export class GoRegexpError extends Error {
  override name = 'GoRegexpError';
}

export function compileGoRegexp(pattern: string): RegExp {
  let source = pattern;
  let flags = '';
  const leading = /^\(\?([a-zA-Z]+)\)/.exec(source);
  if (leading) {
    for (const f of leading[1]!) {
      if (f === 'i' || f === 'm' || f === 's') flags += flags.includes(f) ? '' : f;
      else throw new GoRegexpError(`unsupported flag '${f}' in ${JSON.stringify(pattern)}`);
    }
    source = source.slice(leading[0].length);
  }
  source = translateEscapes(source);
  try {
    return new RegExp(source, flags);
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, '') : String(err);
    throw new GoRegexpError(`invalid regular expression ${JSON.stringify(pattern)}: ${why}`);
  }
}

/** Rewrites RE2-only tokens outside character classes; everything else is passed through unchanged. */
function translateEscapes(source: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const n = source[i + 1] ?? '';
      if (!inClass && n === 'A') out += '^';
      else if (!inClass && n === 'z') out += '$(?![\\s\\S])';
      else out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // a `]` right after `[` or `[^` is a literal member, not the end of the class
      if (source[i + 1] === '^') out += source[++i];
      if (source[i + 1] === ']') {
        out += '\\]'; // JavaScript reads `[]` as an empty class: escape it
        i++;
      }
      continue;
    }
    if (source.startsWith('(?P<', i)) {
      out += '(?<';
      i += 3;
      continue;
    }
    out += c;
  }
  return out;
}
