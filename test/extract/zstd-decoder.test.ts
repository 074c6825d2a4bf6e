import t from 'tap';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import * as zlib from 'node:zlib';
import { zstdDecoder } from '../../src/extract/zstd-decoder.js';

/** Feeds `data` in `piece`-byte writes (honouring backpressure) and reads the output, slowly when asked. */
async function decode(data: Buffer, piece: number, opts: { slowReader?: boolean } = {}): Promise<Buffer> {
  const d = zstdDecoder();
  const input = d.input!;
  const feeding = (async () => {
    for (let at = 0; at < data.length; at += piece) {
      if (!input.write(data.subarray(at, at + piece))) await new Promise((r) => input.once('drain', r));
    }
    input.end();
  })();
  const out: Buffer[] = [];
  try {
    for await (const chunk of d.output) {
      out.push(chunk as Buffer);
      if (opts.slowReader) await sleep(2);
    }
    await d.done;
  } finally {
    await feeding;
  }
  return Buffer.concat(out);
}

function skippable(data: Buffer, nibble = 0): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a50 + nibble, 0);
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data]);
}

// half random, half text: raw and compressed blocks both occur
const a = Buffer.concat([randomBytes(700_000), Buffer.alloc(500_000, 'a')]);
const b = Buffer.concat([Buffer.alloc(300_000, 'b'), randomBytes(900_000)]);
const one = zlib.zstdCompressSync(a);
const two = Buffer.concat([zlib.zstdCompressSync(a), zlib.zstdCompressSync(b)]);

t.test('every frame is decoded, whatever the write size and however slowly the output is read', async (t) => {
  const cases: [string, Buffer, Buffer][] = [
    ['one frame', one, a],
    ['two frames', two, Buffer.concat([a, b])],
    ['a skippable frame first', Buffer.concat([skippable(Buffer.from('toc')), one]), a],
    ['skippable frames before, between and after', Buffer.concat([skippable(Buffer.alloc(5)), zlib.zstdCompressSync(a),
      skippable(Buffer.alloc(9), 3), zlib.zstdCompressSync(b), skippable(Buffer.from('trailer'), 15)]), Buffer.concat([a, b])],
    ['only a skippable frame', skippable(Buffer.from('nothing')), Buffer.alloc(0)],
  ];
  for (const [name, data, want] of cases) {
    for (const piece of [1000, 65_536, data.length]) {
      for (const slowReader of [false, true]) {
        const got = await decode(data, piece, { slowReader });
        t.ok(got.equals(want), `${name}, ${piece}-byte writes${slowReader ? ', slow reader' : ''}: ${got.length} of ${want.length} bytes`);
      }
    }
  }
});

t.test("many frames as pzstd writes them decode to zstd's own output", async (t) => {
  const data = Buffer.concat([a, b, a]);
  const multi = execFileSync('pzstd', ['-q', '-1', '-p', '2', '-c'], { input: data, maxBuffer: 64 << 20 });
  t.ok((await decode(multi, 100_000, { slowReader: true })).equals(data));
});

t.test('bad data rejects with the decoder’s words', async (t) => {
  await t.rejects(decode(one.subarray(0, one.length - 10), 4096), /end of/i, 'a truncated frame');
  await t.rejects(decode(Buffer.concat([one, two.subarray(0, 2000)]), 4096), /premature end|end of file/i, 'a truncated second frame');
  await t.rejects(decode(Buffer.from('garbage!garbage!'), 4096), /unknown frame descriptor/i, 'not zstd');
  await t.rejects(decode(Buffer.concat([one, Buffer.from('garbage!garbage!')]), 4096), /unsupported format|unknown/i, 'garbage after a frame');
  await t.rejects(decode(Buffer.alloc(0), 4096), /end of file/i, 'no data at all');
});

t.test('without the zstd program: one frame still decodes, more frames fail saying what to install', async (t) => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.teardown(() => {
    process.env.PATH = path;
  });
  t.ok((await decode(one, 65_536)).equals(a), 'one frame');
  await t.rejects(decode(two, 65_536), { message: /several frames: the zstd program is not installed \(install the zstd package\)/ });
});

t.test('destroy() stops the decoder, which then rejects', async (t) => {
  const d = zstdDecoder();
  d.input!.write(two.subarray(0, 10_000));
  d.destroy();
  await t.rejects(d.done, { message: 'zstd decoder stopped' });
});
