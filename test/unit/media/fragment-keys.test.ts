import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isKeywardenError } from '../../../src/errors/index.js';
import { parseBoxes } from '../../../src/media/box.js';
import { ByteWriter, toHex } from '../../../src/media/bytes.js';
import { decryptBytes } from '../../../src/media/decrypt/index.js';
import { readFragmentKeys } from '../../../src/media/fragment-keys.js';
import { jsCipherFactory } from '../../../src/media/js-sample-cipher.js';
import { parseFile } from '../../../src/media/movie.js';
import { packageFile } from '../../../src/media/package/packager.js';
import { encryptFragmented, type TestKey } from '../../helpers/media/cenc-writer.js';
import { codeOf } from '../../helpers/codes.js';
import { splitSegments, type Segments } from '../../helpers/segments.js';

const CLIP = path.resolve(
  import.meta.dirname,
  '..',
  '..',
  'fixtures',
  'media',
  'demo-h264-aac.mp4',
);
const dir = mkdtempSync(path.join(tmpdir(), 'kw-fragkeys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const key = (n: number): TestKey => ({
  kid: new Uint8Array(16).fill(n),
  key: new Uint8Array(16).fill(0x30 + n),
});
const hex = (n: number): string => toHex(new Uint8Array(16).fill(n));

/** A box of `type` with `body`. */
function box(type: string, body: Uint8Array = new Uint8Array(0)): Buffer {
  const w = new ByteWriter(16 + body.length);
  w.box(type, (b) => b.bytes(body));
  return w.toBuffer();
}

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

let live: Segments;
beforeAll(async () => {
  const output = path.join(dir, 'live.mp4');
  await packageFile({
    input: CLIP,
    output,
    scheme: 'cenc',
    key: key(1),
    rotationKeys: [key(2), key(3)],
    rotateEvery: 2,
    fragmentMs: 1000,
    psshInMoof: true,
    embeddedLicenses: [Uint8Array.of(0xa0), Uint8Array.of(0xa1), Uint8Array.of(0xa2)],
    cipherFactory: jsCipherFactory,
  });
  live = splitSegments(readFileSync(output));
});

describe('readFragmentKeys', () => {
  it('names the KIDs each fragment needs, the KIDs its pssh announce and its embedded license', () => {
    const expected = [
      [1, [1, 2], 0xa0],
      [1, [1, 2], 0xa0],
      [2, [2, 3], 0xa1],
      [2, [2, 3], 0xa1],
      [3, [3], 0xa2],
    ] as const;
    expect(live.fragments).toHaveLength(expected.length);
    live.fragments.forEach((fragment, i) => {
      const [kid, announced, license] = expected[i]!;
      const info = readFragmentKeys(fragment, live.init);
      expect(info.sequenceNumbers).toEqual([i + 1]);
      expect(info.kids).toEqual([hex(kid)]);
      expect(info.announcedKids).toEqual(announced.map(hex));
      expect(info.embeddedLicenses).toEqual([Uint8Array.of(license)]);
      expect(info.complete).toBe(true);
      expect(info.pssh).toHaveLength(2);
      expect(info.pssh[0]!.keywarden?.keyIds.map(toHex)).toEqual(announced.map(hex));
      expect(info.pssh[1]!.systemId).toBe('1077efec-c0b2-4d02-ace3-3c1e52e2fb4b');
      for (const t of info.tracks) {
        expect(t.kids).toEqual(t.samples > 0 ? [hex(kid)] : []);
        expect(t.encryptedSamples).toBe(t.samples);
      }
    });
  });

  it('takes styp, sidx, emsg and prft before the moof, several fragments at once, and a parsed init', () => {
    const sidx = live.top.find((b) => b.type === 'sidx')!;
    const segment = Buffer.concat([
      box('styp', Buffer.from('msdh\0\0\0\0msdhmsix')),
      live.file.subarray(sidx.offset, sidx.offset + sidx.size),
      box('emsg', new Uint8Array(24)),
      box('prft', new Uint8Array(20)),
      live.fragments[1]!,
      live.fragments[2]!,
    ]);
    const info = readFragmentKeys(segment, parseFile(live.init).movie!);
    expect(info.sequenceNumbers).toEqual([2, 3]);
    expect(info.kids).toEqual([hex(1), hex(2)]);
    expect(info.embeddedLicenses).toEqual([Uint8Array.of(0xa0), Uint8Array.of(0xa1)]);
    expect(info.announcedKids).toEqual([hex(1), hex(2), hex(3)]);
  });

  it('needs only the moof: a last mdat still arriving gives complete: false', () => {
    const fragment = live.fragments[2]!;
    const moofSize = fragment.readUInt32BE(0);
    const partial = readFragmentKeys(fragment.subarray(0, moofSize + 100), live.init);
    expect(partial.complete).toBe(false);
    expect(partial.kids).toEqual([hex(2)]);
    // ...but an mdat with no moof before it, or a cut moof, is not enough.
    expect(
      codeOf(() => readFragmentKeys(fragment.subarray(moofSize, moofSize + 50), live.init)),
    ).toBe('MEDIA_MISSING_BOX');
    expect(codeOf(() => readFragmentKeys(fragment.subarray(0, moofSize - 1), live.init))).toBe(
      'MEDIA_TRUNCATED',
    );
  });

  it('reads seig groups in the stbl, PIFF overrides and clear tracks', async () => {
    // A clear fragmented file: our packager's output, decrypted.
    const { output: clear } = await decryptBytes(live.file, {
      keys: [key(1), key(2), key(3)],
      cipherFactory: jsCipherFactory,
    });
    const global = splitSegments(
      encryptFragmented(clear, {
        scheme: 'cenc',
        keys: new Map([[1, key(7)]]),
        ivSize: 8,
        rotation: { mode: 'global', keys: [key(8), key(9)] },
      }),
    );
    const kidsOf = (s: Segments): string[][] =>
      s.fragments.map((f) => readFragmentKeys(f, s.init).kids as string[]);
    // Video rotates through the stbl's groups; the last fragment holds only (clear) audio.
    expect(kidsOf(global)).toEqual([[hex(8)], [hex(9)], [hex(8)], [hex(9)], []]);
    const audio = readFragmentKeys(global.fragments[0]!, global.init).tracks.find(
      (t) => t.trackId === 2,
    )!;
    expect(audio).toMatchObject({ kids: [], encryptedSamples: 0 });
    expect(audio.samples).toBeGreaterThan(0);
    const piff = splitSegments(
      encryptFragmented(clear, {
        scheme: 'piff',
        piffOverride: true,
        keys: new Map([
          [1, key(5)],
          [2, key(5)],
        ]),
        ivSize: 8,
      }),
    );
    expect(kidsOf(piff).every((k) => k.length === 1 && k[0] === hex(5))).toBe(true);
  });
});

describe('readFragmentKeys on bad input', () => {
  it('refuses what is not a media segment with coded errors', () => {
    const f = live.fragments[0]!;
    expect(codeOf(() => readFragmentKeys(new Uint8Array(0), live.init))).toBe('MEDIA_MISSING_BOX');
    expect(codeOf(() => readFragmentKeys(box('styp', new Uint8Array(8)), live.init))).toBe(
      'MEDIA_MISSING_BOX',
    );
    expect(codeOf(() => readFragmentKeys(Buffer.concat([box('zzzz'), f]), live.init))).toBe(
      'MEDIA_MALFORMED_BOX',
    );
    expect(codeOf(() => readFragmentKeys(f.subarray(0, 5), live.init))).toBe('MEDIA_TRUNCATED');
    expect(codeOf(() => readFragmentKeys(f, box('ftyp', new Uint8Array(8))))).toBe(
      'MEDIA_MISSING_BOX',
    );
    expect(codeOf(() => readFragmentKeys(f, f))).toBe('MEDIA_MISSING_BOX');
    expect(codeOf(() => readFragmentKeys('moof' as unknown as Uint8Array, live.init))).toBe(
      'MEDIA_NOT_MP4',
    );
  });

  it('refuses a moof whose box sizes lie', () => {
    const f = Buffer.from(live.fragments[0]!);
    f.writeUInt32BE(f.readUInt32BE(0) + 3, 0); // moof runs into the mdat header
    expect(['MEDIA_BAD_BOX_SIZE', 'MEDIA_TRUNCATED']).toContain(
      codeOf(() => readFragmentKeys(f, live.init)),
    );
    const g = Buffer.from(live.fragments[0]!);
    g.writeUInt32BE(3, 8); // mfhd size below its header
    expect(codeOf(() => readFragmentKeys(g, live.init))).toBe('MEDIA_BAD_BOX_SIZE');
  });

  it('refuses a keywarden pssh whose data is not PsshData: HEADER_MALFORMED', () => {
    const f = Buffer.from(live.fragments[0]!);
    const moof = parseBoxes(f, 0, f.length)[0]!;
    const pssh = moof.children!.find((c) => c.type === 'pssh')!;
    // The data starts after version/flags, system id, KID count and KIDs, and its size.
    const dataAt = pssh.offset + pssh.headerSize + 4 + 16 + 4 + 2 * 16 + 4;
    f[dataAt] = 0xff; // an invalid protobuf tag
    f[dataAt + 1] = 0xff;
    expect(codeOf(() => readFragmentKeys(f, live.init))).toBe('HEADER_MALFORMED');
  });

  it('refuses a traf for a track the init segment does not have', () => {
    const f = Buffer.from(live.fragments[0]!);
    const moof = parseBoxes(f, 0, f.length)[0]!;
    const tfhd = moof
      .children!.find((c) => c.type === 'traf')!
      .children!.find((c) => c.type === 'tfhd')!;
    f.writeUInt32BE(77, tfhd.offset + tfhd.headerSize + 4);
    expect(codeOf(() => readFragmentKeys(f, live.init))).toBe('MEDIA_MALFORMED_BOX');
  });

  it('every truncation of a fragment is a coded error, or a complete moof with a partial mdat', () => {
    const f = live.fragments[2]!;
    const moofSize = f.readUInt32BE(0);
    for (let n = 1; n < f.length; n += n < moofSize + 16 ? 1 : 97) {
      let info;
      try {
        info = readFragmentKeys(f.subarray(0, n), live.init);
      } catch (err) {
        expect(isKeywardenError(err), `cut at ${n}: ${String(err)}`).toBe(true);
        expect(n).toBeLessThan(moofSize);
        continue;
      }
      expect(n).toBeGreaterThanOrEqual(moofSize);
      expect(info.complete).toBe(n === moofSize);
      expect(info.kids).toEqual([hex(2)]);
    }
  });

  it('random bytes and random mutations give a result or a coded error, never a crash', () => {
    const rand = prng(0x5eed);
    const base = live.fragments[1]!;
    const moofSize = base.readUInt32BE(0);
    let coded = 0;
    for (let i = 0; i < 1500; i++) {
      let input: Buffer;
      if (i < 300) {
        input = Buffer.from(
          Array.from({ length: 8 + Math.floor(rand() * 200) }, () => rand() * 256),
        );
        if (i % 2 === 0) input.write('moof', 4, 'latin1'); // get past the first header check
      } else {
        input = Buffer.from(base);
        const edits = 1 + Math.floor(rand() * 4);
        for (let e = 0; e < edits; e++) {
          const at = Math.floor(rand() * moofSize); // mutate the moof, where the parsing is
          input[at] = Math.floor(rand() * 256);
        }
      }
      try {
        readFragmentKeys(input, live.init);
      } catch (err) {
        expect(isKeywardenError(err), `input ${i}: ${String(err)}`).toBe(true);
        coded++;
      }
    }
    expect(coded).toBeGreaterThan(300);
  });
});
