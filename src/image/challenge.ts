/**
 * WWW-Authenticate challenges of the distribution spec:
 *   Bearer realm="https://auth.example/token",service="registry.example",scope="repository:x:pull"
 *   Basic realm="Registry Realm"
 */
export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses one header value, possibly holding several challenges; unknown schemes are skipped. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (!header) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  const re = /\s*([A-Za-z][A-Za-z0-9_-]*)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*)))?\s*,?/gy;
  let current: Challenge | undefined;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    if (m[0] === '') break;
    const [, name, quoted, bare] = m;
    if (quoted === undefined && bare === undefined) {
      // a token without '=' starts a new challenge (the scheme); "Bearer realm=..." arrives as scheme then params
      const scheme = name!.toLowerCase();
      current = scheme === 'basic' || scheme === 'bearer' ? { scheme, params: {} } : undefined;
      if (current) out.push(current);
      // the scheme is followed by a space and its first param, which the regexp reads next
      continue;
    }
    if (current) current.params[name!.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare!;
  }
  return out;
}
