/**
 * Variable substitution in a Module's containerImage, with the semantics KMM gets from its envsubst parser:
 * `$VAR`, `${VAR}`, `${VAR:-default}` / `${VAR:=default}` (default when unset or empty), `${VAR-default}` /
 * `${VAR=default}` (default when unset), `${VAR+alt}` / `${VAR:+alt}` (alt when set), `$$` for a literal `$`.
 * An unset variable becomes the empty string. A default that is exactly `$NAME` is that variable's value;
 * any other default is literal text. `${` without a closing brace on the same line is an error.
 */
export class SubstitutionError extends Error {
  override name = 'SubstitutionError';
}

const IDENT = /^[\p{L}\p{N}_]+/u;

export function substituteVariables(template: string, vars: Readonly<Record<string, string>>): string {
  const has = (name: string) => Object.hasOwn(vars, name);
  const get = (name: string) => (has(name) ? vars[name]! : '');
  let out = '';
  let i = 0;
  while (i < template.length) {
    const dollar = template.indexOf('$', i);
    if (dollar < 0) {
      out += template.slice(i);
      break;
    }
    out += template.slice(i, dollar);
    const next = template[dollar + 1];
    if (next === '$') {
      out += '$';
      i = dollar + 2;
      continue;
    }
    if (next === '{') {
      const close = findClose(template, dollar + 2);
      const body = template.slice(dollar + 2, close);
      const name = IDENT.exec(body)?.[0];
      if (!name) {
        // not a substitution (`${}`, `${-x}`): kept as text, as the envsubst lexer does
        out += template.slice(dollar, close + 1);
      } else {
        out += expand(name, body.slice(name.length));
      }
      i = close + 1;
      continue;
    }
    const name = IDENT.exec(template.slice(dollar + 1))?.[0];
    if (name && name !== '_') {
      out += get(name);
      i = dollar + 1 + name.length;
    } else {
      out += '$';
      i = dollar + 1;
    }
  }
  return out;

  function expand(name: string, rest: string): string {
    const op = /^(:-|:=|:\+|-|=|\+)/.exec(rest)?.[0];
    if (!op) return get(name); // `${VAR}`; an unknown operator is ignored, as envsubst does
    const word = rest.slice(op.length);
    const fallback = () => {
      const v = /^\$([\p{L}\p{N}_]+)$/u.exec(word);
      return v ? get(v[1]!) : word;
    };
    switch (op) {
      case ':-':
      case ':=':
        return get(name) !== '' ? get(name) : fallback();
      case '-':
      case '=':
        return has(name) ? get(name) : fallback();
      default: // '+' and ':+'
        return has(name) ? fallback() : '';
    }
  }
}

function findClose(template: string, from: number): number {
  for (let j = from; j < template.length; j++) {
    const c = template[j];
    if (c === '}') return j;
    if (c === '\n' || c === '\r') break;
  }
  throw new SubstitutionError(`closing brace expected after '${template.slice(from - 2)}'`);
}
