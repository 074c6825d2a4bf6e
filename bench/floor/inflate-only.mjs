// Row b)'s floor (bench/run.ts): inflates the gzip files named on the command line with Node's zlib, one after
// the other, and drops the output. No download, no digest, no tar parsing: a gzip selective pull cannot cost less
// than this in a Node process. The same zlib settings as src/extract/layer-entries.ts.
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

for (const file of process.argv.slice(2)) {
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), createGunzip({ chunkSize: 256 * 1024 }), new Writable({ write: (_chunk, _enc, done) => done() }));
}
