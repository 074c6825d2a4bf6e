// Row b)'s floor (bench/run.ts): what a selective pull of a gzip image cannot skip, and nothing else. For each
// blob URL on the command line, one after the other: download it (Node's fetch), sha256 the compressed bytes,
// inflate them with Node's zlib and sha256 the result (the DiffID). No tar parsing, no files, no checks of the
// digests against anything (so no cost of reporting either).
//   node download-verify-inflate.mjs <blob URL>...
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

for (const url of process.argv.slice(2)) {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}`);
  const blob = createHash('sha256');
  const diff = createHash('sha256');
  const gunzip = createGunzip({ chunkSize: 256 * 1024 }); // as src/extract/layer-entries.ts
  const body = Readable.fromWeb(res.body);
  body.on('data', (chunk) => blob.update(chunk));
  body.pipe(gunzip);
  for await (const chunk of gunzip) diff.update(chunk);
  console.log(`${url.split('/').pop()} ${blob.digest('hex').slice(0, 12)} ${diff.digest('hex').slice(0, 12)}`);
}
