import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../../src/errors/index.js';
import { decryptFile } from '../../../src/media/decrypt/index.js';
import {
  encryptFragmented,
  type EncryptSpec,
  type TestKey,
} from '../../helpers/media/cenc-writer.js';
import { interopManifest, interopPath } from '../../helpers/media/interop.js';
import { boxAt, copy, fourccOffset, setU32 } from '../../helpers/media/mp4-patch.js';

const manifest = interopManifest();
const key: TestKey = { kid: new Uint8Array(16).fill(1), key: new Uint8Array(16).fill(0x41) };
const spec: EncryptSpec = {
  scheme: 'cenc',
  keys: new Map([
    [1, key],
    [2, key],
  ]),
  ivSize: 8,
  subsamples: true,
};
const root = mkdtempSync(path.join(tmpdir(), 'kw-bad-'));
let dir = '';
let n = 0;
beforeEach(() => {
  dir = path.join(root, `case-${n++}`);
  mkdirSync(dir, { recursive: true });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Decrypts `input`, expecting `codes`; the output directory must stay empty (no output, no temp file). */
async function expectRejected(
  input: Uint8Array,
  codes: ErrorCode | ErrorCode[],
  keys = [key],
): Promise<void> {
  const inFile = path.join(root, `in-${n}.mp4`);
  writeFileSync(inFile, input);
  const out = path.join(dir, 'out.mp4');
  const err = await decryptFile(inFile, out, { keys }).then(
    () => new Error('decrypt succeeded'),
    (e: unknown) => e,
  );
  expect(err).toMatchObject({ name: 'KeywardenError' });
  expect([codes].flat()).toContain((err as { code: string }).code);
  expect(readdirSync(dir)).toEqual([]);
}

describe.skipIf(!manifest)('decrypt rejects hostile input with a coded error and no output', () => {
  const clear = manifest ? readFileSync(interopPath('prog_8s_dec_dashinit.mp4')) : new Uint8Array();
  const good = manifest ? encryptFragmented(clear, spec) : Buffer.alloc(0);

  it('truncated anywhere', async () => {
    for (const cut of [7, 30, 700, 2000, good.length - 1000, good.length - 1]) {
      await expectRejected(good.subarray(0, cut), ['MEDIA_TRUNCATED', 'MEDIA_NOT_MP4']);
    }
  });

  it('box size 0 on a box that is not last swallows the file: the moov is then malformed', async () => {
    const bad = setU32(copy(good), boxAt(good, 'moov').offset, 0);
    await expectRejected(bad, [
      'MEDIA_BAD_BOX_SIZE',
      'MEDIA_TRUNCATED',
      'MEDIA_MALFORMED_BOX',
      'MEDIA_MISSING_BOX',
    ]);
  });

  it('box sizes below the header, beyond EOF, 0xFFFFFFFF, and a 64-bit size too small or too large', async () => {
    const moof = boxAt(good, 'moof').offset;
    await expectRejected(setU32(copy(good), moof, 4), 'MEDIA_BAD_BOX_SIZE');
    await expectRejected(setU32(copy(good), moof, 0xffffffff), [
      'MEDIA_TRUNCATED',
      'MEDIA_BAD_BOX_SIZE',
    ]);
    const trun = boxAt(good, 'moof/traf/trun').offset;
    await expectRejected(setU32(copy(good), trun, 0x7fffffff), 'MEDIA_BAD_BOX_SIZE');
    const large = setU32(copy(good), moof, 1);
    large.writeUInt32BE(0, moof + 8);
    large.writeUInt32BE(12, moof + 12);
    await expectRejected(large, 'MEDIA_BAD_BOX_SIZE');
    large.writeUInt32BE(0x7fffffff, moof + 8);
    await expectRejected(large, ['MEDIA_TOO_LARGE', 'MEDIA_TRUNCATED', 'MEDIA_BAD_BOX_SIZE']);
  });

  it('a nesting bomb', async () => {
    const depth = 40;
    const bomb = Buffer.alloc(8 * depth);
    for (let i = 0; i < depth; i++) {
      bomb.writeUInt32BE(8 * (depth - i), 8 * i);
      bomb.write(i === 0 ? 'moov' : 'trak', 8 * i + 4, 'latin1');
    }
    await expectRejected(
      Buffer.concat([good.subarray(0, boxAt(good, 'moov').offset), bomb]),
      'MEDIA_NESTING_TOO_DEEP',
    );
  });

  it('subsamples larger than their sample', async () => {
    const bad = copy(good);
    const senc = boxAt(good, 'moof/traf/senc');
    // First entry: 8-byte IV, subsample count, then BytesOfClearData (u16) and BytesOfProtectedData (u32).
    const entry = senc.offset + senc.headerSize + 8 + 8;
    bad.writeUInt32BE(0x7ffffff0, entry + 2 + 2);
    await expectRejected(bad, 'MEDIA_SUBSAMPLE_OVERFLOW');
  });

  it('samples outside the mdat', async () => {
    const bad = copy(good);
    const trun = boxAt(good, 'moof/traf/trun');
    bad.writeInt32BE(-100000, trun.offset + trun.headerSize + 8);
    await expectRejected(bad, 'MEDIA_SAMPLE_OUT_OF_RANGE');
    const beyond = copy(good);
    beyond.writeInt32BE(50_000_000, trun.offset + trun.headerSize + 8);
    await expectRejected(beyond, 'MEDIA_SAMPLE_OUT_OF_RANGE');
  });

  it('a huge sample count in trun', async () => {
    const bad = copy(good);
    const trun = boxAt(good, 'moof/traf/trun');
    bad.writeUInt32BE(0xfffffff0, trun.offset + trun.headerSize + 4);
    await expectRejected(bad, ['MEDIA_TRUNCATED', 'MEDIA_TOO_LARGE']);
  });

  it('missing tenc, unknown scheme, bad IV size', async () => {
    const noTenc = copy(good);
    noTenc.write('xenc', fourccOffset(good, 'tenc') + 4, 'latin1');
    await expectRejected(noTenc, 'MEDIA_MISSING_TENC');
    const unknown = copy(good);
    unknown.write('abcd', fourccOffset(good, 'schm') + 12, 'latin1');
    await expectRejected(unknown, 'MEDIA_UNKNOWN_SCHEME');
    const badIv = copy(good);
    badIv.writeUInt8(5, fourccOffset(good, 'tenc') + 15);
    await expectRejected(badIv, 'MEDIA_BAD_IV');
  });

  it('wrong and missing keys', async () => {
    await expectRejected(good, 'MEDIA_WRONG_KEY', [
      { kid: key.kid, key: new Uint8Array(16).fill(3) },
    ]);
    await expectRejected(good, 'MEDIA_MISSING_KEY', [
      { kid: new Uint8Array(16).fill(2), key: key.key },
    ]);
  });

  it('not an MP4, empty, or clear', async () => {
    await expectRejected(Buffer.from('#EXTM3U\n#EXT-X-VERSION:3\n'), 'MEDIA_NOT_MP4');
    await expectRejected(Buffer.alloc(0), 'MEDIA_NOT_MP4');
    await expectRejected(clear, 'CONTENT_NOT_PROTECTED');
  });

  it('a senc with fewer entries than samples', async () => {
    const bad = copy(good);
    const senc = boxAt(good, 'moof/traf/senc');
    bad.writeUInt32BE(3, senc.offset + senc.headerSize + 4);
    await expectRejected(bad, 'MEDIA_MALFORMED_BOX');
  });

  it('a missing input is IO_FAILED', async () => {
    const err = await decryptFile(path.join(root, 'nope.mp4'), path.join(dir, 'out.mp4'), {
      keys: [key],
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IO_FAILED' });
  });
});

describe.skipIf(!manifest)('decrypt accepts unusual but valid layouts', () => {
  const clear = manifest ? readFileSync(interopPath('prog_8s_dec_dashinit.mp4')) : new Uint8Array();
  const good = manifest ? encryptFragmented(clear, spec) : Buffer.alloc(0);

  it('a last mdat of size 0 ("to the end of the file")', async () => {
    const { decryptBytes } = await import('../../../src/media/decrypt/index.js');
    const mdats = boxAt(good, 'mdat', 1);
    const bad = setU32(copy(good), mdats.offset, 0);
    const { output } = await decryptBytes(bad, { keys: [key] });
    expect(output.length).toBeGreaterThan(100_000);
  });
});

describe('decrypt on flat files (ffmpeg layout) rejects lying tables', async () => {
  const { hasFfmpeg, makeClip, ffmpeg } = await import('../../helpers/ffmpeg.js');
  const available = hasFfmpeg();
  const flatKey = {
    kid: Buffer.from('0123456789abcdef0123456789abcdef', 'hex'),
    key: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
  };
  const load = async (): Promise<Buffer> => {
    const clip = await makeClip({ video: 'h264', audio: 'aac', seconds: 1 });
    const out = path.join(root, 'flat-enc.mp4');
    await ffmpeg([
      '-i',
      clip,
      '-c',
      'copy',
      '-encryption_scheme',
      'cenc-aes-ctr',
      '-encryption_key',
      flatKey.key.toString('hex'),
      '-encryption_kid',
      flatKey.kid.toString('hex'),
      out,
    ]);
    return readFileSync(out);
  };

  it.skipIf(!available)(
    'stco beyond the file, stsz counts beyond the box, senc subsample overflow',
    async () => {
      const flat = await load();
      const stco = boxAt(flat, 'moov/trak/mdia/minf/stbl/stco');
      await expectRejected(
        setU32(copy(flat), stco.offset + stco.headerSize + 8, 0x7fff0000),
        'MEDIA_SAMPLE_OUT_OF_RANGE',
        [flatKey],
      );
      const stsz = boxAt(flat, 'moov/trak/mdia/minf/stbl/stsz');
      await expectRejected(
        setU32(copy(flat), stsz.offset + stsz.headerSize + 8, 0x10000000),
        ['MEDIA_TRUNCATED', 'MEDIA_TOO_LARGE'],
        [flatKey],
      );
      const uniform = setU32(copy(flat), stsz.offset + stsz.headerSize + 4, 1000);
      await expectRejected(
        setU32(uniform, stsz.offset + stsz.headerSize + 8, 0xffffffff),
        'MEDIA_TOO_LARGE',
        [flatKey],
      );
      const senc = boxAt(flat, 'moov/trak/mdia/minf/stbl/senc');
      await expectRejected(
        setU32(copy(flat), senc.offset + senc.headerSize + 8 + 8 + 2 + 2, 0x7fffffff),
        'MEDIA_SUBSAMPLE_OVERFLOW',
        [flatKey],
      );
    },
  );

  it.skipIf(!available)('a 64-bit mdat header decrypts', async () => {
    const flat = await load();
    const free = boxAt(flat, 'free');
    const mdat = boxAt(flat, 'mdat');
    expect(free.offset + 8).toBe(mdat.offset);
    const wide = copy(flat);
    setU32(wide, free.offset, 1);
    wide.write('mdat', free.offset + 4, 'latin1');
    wide.writeBigUInt64BE(BigInt(mdat.size + 8), free.offset + 8);
    const { decryptBytes } = await import('../../../src/media/decrypt/index.js');
    const { report } = await decryptBytes(wide, { keys: [flatKey] });
    expect(report.encryptedSamples).toBeGreaterThan(20);
  });
});
