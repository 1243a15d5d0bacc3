import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBoxes } from '../../src/media/box.js';
import { toUuid } from '../../src/media/bytes.js';
import { decryptBytes, type ContentKey } from '../../src/media/decrypt/index.js';
import { inspectSource } from '../../src/media/inspect.js';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { BufferSource } from '../../src/media/stream/byte-source.js';
import { encryptFragmented, type EncryptSpec, type TestKey } from '../helpers/media/cenc-writer.js';
import { ffmpegOutput, hasFfmpeg } from '../helpers/ffmpeg.js';
import { interopManifest, interopPath } from '../helpers/media/interop.js';
import { byTrack, listSamplesOf } from '../helpers/samples.js';

const manifest = interopManifest();
const key = (n: number): TestKey => ({
  kid: new Uint8Array(16).fill(n),
  key: new Uint8Array(16).fill(0x40 + n),
});
const twoKeys = new Map([
  [1, key(1)],
  [2, key(2)],
]);
const constantIv = Uint8Array.from({ length: 16 }, (_, i) => i * 7);

/** Every mode the decryptor must read, on a video (avc1, subsamples) + audio (mp4a, whole-sample) file. */
const SPECS: Record<string, EncryptSpec> = {
  'cenc, 8-byte IVs, subsamples': { scheme: 'cenc', keys: twoKeys, ivSize: 8, subsamples: true },
  'cenc, 16-byte IVs, whole samples': { scheme: 'cenc', keys: twoKeys, ivSize: 16 },
  'cbcs 1:9, constant IV': {
    scheme: 'cbcs',
    keys: twoKeys,
    ivSize: 0,
    constantIv,
    pattern: [1, 9],
    subsamples: true,
  },
  'cbcs 2:8, per-sample IVs': {
    scheme: 'cbcs',
    keys: twoKeys,
    ivSize: 16,
    pattern: [2, 8],
    subsamples: true,
  },
  'cens 1:9': { scheme: 'cens', keys: twoKeys, ivSize: 8, pattern: [1, 9], subsamples: true },
  cbc1: { scheme: 'cbc1', keys: twoKeys, ivSize: 16, subsamples: true },
  'PIFF 1.1 AES-CTR': { scheme: 'piff', keys: twoKeys, ivSize: 8, subsamples: true },
  'PIFF 1.3 AES-CBC with senc override': {
    scheme: 'piff',
    piffAlgorithm: 2,
    piffOverride: true,
    keys: twoKeys,
    ivSize: 16,
    subsamples: true,
  },
  'aux info via saiz/saio into senc': {
    scheme: 'cenc',
    keys: twoKeys,
    ivSize: 8,
    subsamples: true,
    aux: 'saiz-senc',
  },
  'aux info in mdat, no senc': {
    scheme: 'cens',
    keys: twoKeys,
    ivSize: 16,
    pattern: [1, 9],
    subsamples: true,
    aux: 'saiz-mdat',
  },
  'key rotation, fragment-local seig': {
    scheme: 'cenc',
    keys: twoKeys,
    ivSize: 8,
    subsamples: true,
    rotation: { mode: 'local', keys: [key(3), key(4)] },
  },
  'key rotation, stbl seig': {
    scheme: 'cbcs',
    keys: twoKeys,
    ivSize: 8,
    pattern: [1, 9],
    subsamples: true,
    rotation: { mode: 'global', keys: [key(5), key(6)] },
  },
  'one track clear': { scheme: 'cenc', keys: new Map([[2, key(2)]]), ivSize: 8, subsamples: true },
};

function keysOf(spec: EncryptSpec): ContentKey[] {
  return [...spec.keys.values(), ...(spec.rotation?.keys ?? [])];
}

function expectSameSamples(out: Uint8Array, clear: Uint8Array): void {
  const a = byTrack(listSamplesOf(out));
  for (const [track, list] of byTrack(listSamplesOf(clear)))
    expect(a.get(track), `track ${track}`).toEqual(list);
}

describe.skipIf(!manifest)('decrypt: every scheme and layout', () => {
  const clear = manifest ? readFileSync(interopPath('prog_8s_dec_dashinit.mp4')) : new Uint8Array();

  for (const [name, spec] of Object.entries(SPECS)) {
    it(name, async () => {
      const encrypted = encryptFragmented(clear, spec);
      expect(byTrack(listSamplesOf(encrypted)).get(2)![5]!.hash).not.toBe(
        byTrack(listSamplesOf(clear)).get(2)![5]!.hash,
      );
      const { output, report } = await decryptBytes(encrypted, { keys: keysOf(spec) });
      expectSameSamples(output, clear);
      expect(report.encryptedSamples).toBeGreaterThan(0);
      const js = await decryptBytes(encrypted, {
        keys: keysOf(spec),
        cipherFactory: jsCipherFactory,
      });
      expect(js.output.equals(output)).toBe(true);
    });
  }

  it.skipIf(!hasFfmpeg())(
    'ffmpeg agrees that the test encryptor writes standard cenc',
    async () => {
      const k = key(1);
      const spec: EncryptSpec = {
        scheme: 'cenc',
        keys: new Map([
          [1, k],
          [2, k],
        ]),
        ivSize: 8,
        subsamples: true,
        sidx: true,
      };
      const dir = mkdtempSync(path.join(tmpdir(), 'kw-schemes-'));
      try {
        const file = path.join(dir, 'enc.mp4');
        writeFileSync(file, encryptFragmented(clear, spec));
        const md5 = async (args: string[]): Promise<string[]> =>
          (await ffmpegOutput([...args, '-map', '0', '-c', 'copy', '-f', 'framemd5', '-']))
            .split('\n')
            .filter((l) => l && !l.startsWith('#'))
            .map((l) => l.split(',').slice(0, 6).join(','));
        const theirs = await md5([
          '-decryption_key',
          Buffer.from(k.key).toString('hex'),
          '-i',
          file,
        ]);
        expect(theirs).toEqual(await md5(['-i', interopPath('prog_8s_dec_dashinit.mp4')]));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('a clear track with a c608 caption track and four truns per traf', async () => {
    const captions = readFileSync(interopPath('cbcsdec.mp4'));
    const spec: EncryptSpec = {
      scheme: 'cenc',
      keys: new Map([[1, key(1)]]),
      ivSize: 8,
      subsamples: true,
    };
    const { output } = await decryptBytes(encryptFragmented(captions, spec), {
      keys: keysOf(spec),
    });
    expectSameSamples(output, captions);
  });

  it('a separate init segment: the output is init + media in one clear file', async () => {
    const spec = SPECS['cenc, 8-byte IVs, subsamples']!;
    const encrypted = encryptFragmented(clear, spec);
    const firstMoof = parseBoxes(encrypted, 0, encrypted.length, { containers: new Set() }).find(
      (b) => b.type === 'moof',
    )!;
    const init = encrypted.subarray(0, firstMoof.offset);
    const media = encrypted.subarray(firstMoof.offset);
    const { output } = await decryptBytes(media, { keys: keysOf(spec) }, init);
    expectSameSamples(output, clear);
    await expect(decryptBytes(media, { keys: keysOf(spec) })).rejects.toMatchObject({
      code: 'MEDIA_MISSING_BOX',
    });
  });

  it('missing keys are listed up front, rotation KIDs included', async () => {
    const spec = SPECS['key rotation, fragment-local seig']!;
    const encrypted = encryptFragmented(clear, spec);
    const err = await decryptBytes(encrypted, { keys: [key(1), key(2), key(3)] }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'MEDIA_MISSING_KEY',
      details: { kids: [toUuid(key(4).kid)] },
    });
    const two = await decryptBytes(encrypted, { keys: [key(1)] }).catch((e: unknown) => e);
    expect(two).toMatchObject({ code: 'MEDIA_MISSING_KEY' });
    expect((two as { details: { kids: string[] } }).details.kids).toHaveLength(3);
  });

  it('a bare key serves every KID; two bare keys are refused', async () => {
    const spec: EncryptSpec = {
      scheme: 'cenc',
      keys: new Map([
        [1, key(7)],
        [2, key(7)],
      ]),
      ivSize: 8,
    };
    const encrypted = encryptFragmented(clear, spec);
    const { output } = await decryptBytes(encrypted, { keys: [{ key: key(7).key }] });
    expectSameSamples(output, clear);
    await expect(
      decryptBytes(encrypted, { keys: [{ key: key(7).key }, { key: key(8).key }] }),
    ).rejects.toMatchObject({ code: 'CLI_BAD_KEY' });
  });

  it('inspect sees schemes, patterns, key rotation and the common pssh', async () => {
    const rotated = encryptFragmented(clear, SPECS['key rotation, fragment-local seig']!);
    const r = await inspectSource(new BufferSource(rotated, 'rotated.mp4'));
    expect(r.fragments.list.every((f) => f.tracks.every((t) => t.keyRotation))).toBe(true);
    expect(r.fragments.list[0]!.tracks[0]!.kids).toEqual([toUuid(key(3).kid)]);
    expect(r.pssh[0]!.kids).toHaveLength(4);
    const piff = await inspectSource(
      new BufferSource(encryptFragmented(clear, SPECS['PIFF 1.3 AES-CBC with senc override']!)),
    );
    expect(piff.tracks[0]!.protection).toMatchObject({ scheme: 'piff', piffAlgorithm: 2 });
    const global = await inspectSource(
      new BufferSource(encryptFragmented(clear, SPECS['key rotation, stbl seig']!)),
    );
    expect(global.tracks[0]!.protection?.groups.map((g) => g.pattern)).toEqual(
      ['1:9', '1:9', '1:9', '1:9'].slice(0, global.tracks[0]!.protection!.groups.length),
    );
  });
});
