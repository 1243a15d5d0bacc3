import { readFileSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { decryptBytes } from '../../src/media/decrypt/index.js';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { parseFile } from '../../src/media/movie.js';
import { decodePsshData } from '../../src/media/pssh-data.js';
import { packageFile } from '../../src/media/package/packager.js';
import type { PackageOptions } from '../../src/media/package/package-options.js';
import type { CencScheme } from '../../src/media/sample-crypto.js';
import { SYSTEM_IDS } from '../../src/media/cenc-types.js';
import { toUuid } from '../../src/media/bytes.js';
import { hasFfmpeg, makeClip, type ClipSpec } from '../helpers/ffmpeg.js';
import { traceSliceHeaderBits } from '../unit/media/codec/clip-bitstream.js';
import { splitNalUnits } from '../../src/media/codec/nal-units.js';
import {
  MAIN_KEY,
  hexBytes,
  outPath,
  payloadsByTrack,
  samplesByTrack,
  seigKids,
} from './package-helpers.js';

const SCHEMES: CencScheme[] = ['cenc', 'cbcs', 'cens', 'cbc1'];
const CLIPS: Record<string, ClipSpec> = {
  'h264+aac': { video: 'h264', audio: 'aac', seconds: 3 },
  h265: { video: 'h265', seconds: 3 },
  'h264+aac fragmented input': { video: 'h264', audio: 'aac', seconds: 3, fragmented: true },
};
const ROTATION = [
  {
    kid: hexBytes('a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0'),
    key: hexBytes('a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1'),
  },
  {
    kid: hexBytes('b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0'),
    key: hexBytes('b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1'),
  },
];
const AUDIO_KEY = {
  kid: hexBytes('c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0'),
  key: hexBytes('c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1'),
};

const written: string[] = [];
afterAll(() => written.forEach((f) => rmSync(f, { force: true })));

async function packaged(
  clip: string,
  scheme: CencScheme,
  name: string,
  extra: Partial<PackageOptions> = {},
): Promise<Buffer> {
  const output = outPath(name);
  written.push(output);
  await packageFile({
    input: clip,
    output,
    scheme,
    key: MAIN_KEY,
    fragmentMs: 1000,
    cipherFactory: jsCipherFactory,
    ...extra,
  });
  return readFileSync(output);
}

async function decrypted(buf: Buffer, keys = [MAIN_KEY]): Promise<Buffer> {
  return (await decryptBytes(buf, { keys, cipherFactory: jsCipherFactory })).output;
}

function expectSamePayloads(actual: Buffer, clear: Buffer): void {
  const a = payloadsByTrack(actual);
  const c = payloadsByTrack(clear);
  expect([...a.keys()]).toEqual([...c.keys()]);
  for (const [id, samples] of c) {
    const got = a.get(id)!;
    expect(got.length, `track ${id} sample count`).toBe(samples.length);
    samples.forEach((s, i) => expect(got[i]!.equals(s), `track ${id} sample ${i}`).toBe(true));
  }
}

describe.skipIf(!hasFfmpeg())('package → decrypt round trip', () => {
  for (const [clipName, spec] of Object.entries(CLIPS)) {
    it.each(SCHEMES)(`${clipName}, %s: every sample comes back exactly`, async (scheme) => {
      const clip = await makeClip(spec);
      const clear = readFileSync(clip);
      const ours = await packaged(clip, scheme, `rt-${scheme}-${clipName.replace(/\W+/g, '-')}`);
      expectSamePayloads(await decrypted(ours), clear);
    });
  }

  it.each(SCHEMES)(
    '%s with key rotation: seig names the rotated KIDs and all keys decrypt it',
    async (scheme) => {
      const clip = await makeClip(CLIPS['h264+aac']!);
      const ours = await packaged(clip, scheme, `rot-${scheme}`, {
        rotationKeys: ROTATION,
        rotateEvery: 1,
      });
      const kids = seigKids(ours);
      // 1 s fragments of a 3 s clip: default key, then each rotation key; the audio tail after
      // the last video frame gets a fourth fragment, where the cycle is back at the default key.
      const period = [
        undefined,
        'a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0',
        'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0',
      ];
      expect(kids.get(1)).toEqual(period);
      expect(kids.get(2)).toEqual([...period, undefined]);
      expectSamePayloads(await decrypted(ours, [MAIN_KEY, ...ROTATION]), readFileSync(clip));
      await expect(decrypted(ours, [MAIN_KEY])).rejects.toMatchObject({
        code: 'MEDIA_MISSING_KEY',
      });
    },
  );

  it('gives audio its own key with audioKey and lists every KID in both pssh boxes', async () => {
    const clip = await makeClip(CLIPS['h264+aac']!);
    const ours = await packaged(clip, 'cenc', 'audio-key', {
      audioKey: AUDIO_KEY,
      licenseUrl: 'https://license.example/v1',
      contentId: 'title-42',
    });
    const movie = parseFile(ours).movie!;
    const tenc = movie.tracks.map((t) =>
      Buffer.from(t.protection[0]!.trackEncryption!.kid).toString('hex'),
    );
    expect(tenc).toEqual(['00112233445566778899aabbccddeeff', 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0']);
    const byId = new Map(movie.pssh.map((p) => [toUuid(p.systemId), p]));
    const kw = byId.get(SYSTEM_IDS.keywarden)!;
    expect(decodePsshData(kw.data)).toMatchObject({
      contentId: 'title-42',
      licenseUrl: 'https://license.example/v1',
      protectionScheme: 'cenc',
    });
    expect(kw.kids.length).toBe(2);
    expect(byId.get(SYSTEM_IDS.common)!.kids.length).toBe(2);
    expect(byId.get(SYSTEM_IDS.common)!.data.length).toBe(0);
    expectSamePayloads(await decrypted(ours, [MAIN_KEY, AUDIO_KEY]), readFileSync(clip));
  });
});

describe.skipIf(!hasFfmpeg())('what stays clear and what is encrypted', () => {
  it.each([
    ['h264', 'cenc'],
    ['h264', 'cbcs'],
    ['h265', 'cens'],
    ['h265', 'cbc1'],
  ] as const)(
    '%s %s: clear ranges are the source bytes, protected ranges are not, slice headers stay clear',
    async (video, scheme) => {
      const clip = await makeClip({ video, audio: 'aac', seconds: 2 });
      const ours = await packaged(clip, scheme, `ranges-${video}-${scheme}`);
      const source = samplesByTrack(readFileSync(clip));
      const enc = samplesByTrack(ours, scheme === 'cbcs' ? 0 : scheme === 'cbc1' ? 16 : 8);
      const oracle = await traceSliceHeaderBits(clip);
      const sliceType = (b: number): boolean =>
        video === 'h264' ? [1, 5].includes(b & 0x1f) : ((b >> 1) & 0x3f) <= 21;
      let slice = 0;
      enc.get(1)!.forEach((s, i) => {
        const clear = source.get(1)![i]!.data;
        const subs = s.encryption!.subsamples;
        expect(subs.reduce((n, x) => n + x.clear + x.protected, 0)).toBe(clear.length);
        let at = 0;
        for (const sub of subs) {
          expect(
            s.data.subarray(at, at + sub.clear).equals(clear.subarray(at, at + sub.clear)),
          ).toBe(true);
          at += sub.clear;
          if (sub.protected > 0)
            expect(s.data.subarray(at, at + 16).equals(clear.subarray(at, at + 16))).toBe(false);
          at += sub.protected;
        }
        // Every slice's NAL header and slice header (ffmpeg's count) lie in clear bytes.
        const protectedStarts = subs.reduce<number[]>(
          (acc, x, k) => [
            ...acc,
            (acc[k - 1] ?? 0) + (k > 0 ? subs[k - 1]!.protected : 0) + x.clear,
          ],
          [],
        );
        for (const nal of splitNalUnits(clear, 4)) {
          const type = clear[nal.start]!;
          if (
            !sliceType(type) ||
            (video === 'h265' && ((type >> 1) & 0x3f) > 9 && ((type >> 1) & 0x3f) < 16)
          )
            continue;
          const headerEnd = nal.start + Math.ceil(oracle[slice++]! / 8);
          const firstProtected = protectedStarts.find((p) => p >= nal.start && p < nal.end);
          if (firstProtected !== undefined)
            expect(firstProtected).toBeGreaterThanOrEqual(headerEnd);
        }
      });
      expect(slice).toBe(oracle.length);
      enc.get(2)!.forEach((s, i) => {
        const clear = source.get(2)![i]!.data;
        expect(s.encryption!.subsamples).toEqual([]);
        if (clear.length >= 16)
          expect(s.data.subarray(0, 16).equals(clear.subarray(0, 16))).toBe(false);
        if (scheme !== 'cenc' && clear.length % 16 !== 0) {
          // CBC and the pattern schemes leave the trailing partial block clear (§9.7, §10.2)
          const tail = clear.length - (clear.length % 16);
          expect(s.data.subarray(tail).equals(clear.subarray(tail))).toBe(true);
        }
      });
    },
  );

  it('makes the same file with the native addon as with node:crypto', async () => {
    let native: typeof jsCipherFactory;
    try {
      native = (await import('../../src/media/native-sample-cipher.js')).nativeCipherFactory;
      native.create(new Uint8Array(16)).close();
    } catch {
      console.warn('SKIP: native addon not built; native/JS equivalence not checked');
      return;
    }
    const clip = await makeClip(CLIPS['h264+aac']!);
    for (const scheme of SCHEMES) {
      const iv = hexBytes('000102030405060708090a0b0c0d0e0f');
      const a = await packaged(clip, scheme, `native-${scheme}`, { cipherFactory: native, iv });
      const b = await packaged(clip, scheme, `js-${scheme}`, { iv });
      expect(a.equals(b), scheme).toBe(true);
    }
  });
});
