/** How the report reaches stdout: one JSON object for scripts, or a table like kubectl's for people. */
import type { PreflightReport } from './status.js';

export function renderJson(report: PreflightReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

export function renderTable(report: PreflightReport): string {
  const header = ['NAMESPACE', 'NAME', 'STAGE', 'STATUS', 'REASON'];
  const rows = report.modules.map((m) => [m.namespace, m.name, m.verificationStage, m.verificationStatus, m.statusReason]);
  if (rows.length === 0) return `No Modules to validate for kernel ${report.kernelVersion}.\n`;
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd();
  return [`Kernel ${report.kernelVersion}`, line(header), ...rows.map(line)].join('\n') + '\n';
}
