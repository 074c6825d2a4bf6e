/** The human summary of a diagnosis: one verdict line per check, then the details a reader asks next. */
import type { DiagnoseReport, Verdict } from './collect.js';

const LABEL: Record<Verdict, string> = { ok: 'OK', warn: 'WARN', fail: 'FAIL', info: 'INFO' };

export function renderSummary(r: DiagnoseReport): string {
  const out: string[] = [];
  out.push(`kmm-worker ${r.version} diagnose, ${r.generated}${r.hostRoot !== '/' ? `, host root ${r.hostRoot}` : ''}`);
  if (r.config) out.push(`config ${r.config.path}: ${r.config.containerImage}, kernel ${r.config.kernelVersion}, modules ${r.config.modules.join(', ')}`);
  out.push('');
  const width = Math.max(...r.checks.map((c) => c.check.length));
  for (const c of r.checks) out.push(`${LABEL[c.verdict].padEnd(4)}  ${c.check.padEnd(width)}  ${c.summary}`);
  if (r.cache.length > 0) {
    out.push('', 'image cache:');
    for (const e of r.cache) {
      out.push(`  ${e.reference}  ${e.digest.slice(0, 19)}  ${e.selection}  ${size(e.bytes)}  used ${age(e.ageSeconds)} ago`);
    }
  }
  if (r.firmware.records.length > 0) {
    out.push('', 'firmware records:');
    for (const f of r.firmware.records) out.push(`  ${f.file}: ${f.module}, ${f.files} file(s), modules ${f.modules.join(', ') || '-'}`);
  }
  if (r.modprobeD.length > 0) {
    out.push('', 'modprobe.d:');
    for (const m of r.modprobeD) for (const l of m.lines) out.push(`  ${m.file}: ${l.trim()}`);
  }
  if (r.kernelLog.lines.length > 0) {
    out.push('', 'kernel log:');
    for (const l of r.kernelLog.lines.slice(-20)) out.push(`  ${l}`);
  }
  const worst = r.checks.some((c) => c.verdict === 'fail') ? 'problems found' : r.checks.some((c) => c.verdict === 'warn') ? 'warnings' : 'no problem found';
  out.push('', `verdict: ${worst}`);
  return out.join('\n') + '\n';
}

function age(s: number): string {
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export function size(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
