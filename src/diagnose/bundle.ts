/**
 * The support bundle: a .tar.gz with the report (JSON and summary) and the raw text it was made from
 * (modprobe.d lines, kernel log lines, the config as parsed). Written to a temporary name and renamed, so a
 * half-written bundle is never attached to a ticket.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import type { DiagnoseReport } from './collect.js';

export async function writeBundle(file: string, report: DiagnoseReport, summary: string): Promise<void> {
  const pack = tar.pack();
  const mtime = new Date(report.generated);
  const add = (name: string, text: string) => pack.entry({ name: `kmm-diagnose/${name}`, mtime, mode: 0o644 }, text);
  add('summary.txt', summary);
  add('report.json', JSON.stringify(report, null, 2) + '\n');
  add('modprobe.d.txt', report.modprobeD.map((m) => m.lines.map((l) => `${m.file}: ${l}`).join('\n')).join('\n') + '\n');
  add('dmesg.txt', report.kernelLog.readable ? report.kernelLog.lines.join('\n') + '\n' : `not readable: ${report.kernelLog.reason}\n`);
  pack.finalize();
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await pipeline(pack, createGzip(), createWriteStream(tmp, { mode: 0o600 }));
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
