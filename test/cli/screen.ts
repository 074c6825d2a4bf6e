/**
 * What a terminal shows after receiving some output: a minimal renderer of the sequences our output uses
 * (carriage return, newline, erase line, cursor up/down/column), enough to tell a cleared status line from
 * one left behind or mixed into a log line.
 */
export function render(raw: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (ch: string) => {
    const l = lines[row] ?? '';
    lines[row] = l.padEnd(col).slice(0, col) + ch + l.slice(col + 1);
    col++;
  };
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\x1b' && raw[i + 1] === '[') {
      const m = /^\x1b\[([?0-9;]*)([A-Za-z])/.exec(raw.slice(i));
      if (!m) continue;
      i += m[0].length - 1;
      const n = Number(m[1]) || 1;
      switch (m[2]) {
        case 'A': row = Math.max(0, row - n); break;
        case 'B': row += n; while (lines.length <= row) lines.push(''); break;
        case 'G': col = (Number(m[1]) || 1) - 1; break;
        case 'K': lines[row] = m[1] === '2' ? '' : (lines[row] ?? '').slice(0, col); break;
        default: break; // colours, synchronized output
      }
      continue;
    }
    if (c === '\r') col = 0;
    else if (c === '\n') {
      row++;
      col = 0;
      while (lines.length <= row) lines.push('');
    } else put(c);
  }
  return lines.map((l) => l.trimEnd());
}
