import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBoxes } from '../../src/media/box.js';
import { parseSegmentIndex } from '../../src/media/boxes/index.js';
import { decryptFile } from '../../src/media/decrypt/index.js';
import { inspectFile } from '../../src/media/inspect.js';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { nativeCipherFactory } from '../../src/media/native-sample-cipher.js';
import { ffmpegOutput, hasFfmpeg } from '../helpers/ffmpeg.js';
import { interopManifest, interopPath } from '../helpers/media/interop.js';
import { byTrack, listSamples } from '../helpers/samples.js';

const manifest = interopManifest();
const work = mkdtempSync(path.join(tmpdir(), 'kw-interop-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!manifest)('interop: files written and decrypted by mp4ff', () => {
  for (const entry of manifest ?? []) {
    for (const factory of [nativeCipherFactory, jsCipherFactory]) {
      it(`${entry.file} (${entry.scheme}, ${factory.name}) decrypts to the reference's samples`, async () => {
        const out = path.join(work, `${factory.name}-${entry.file}`);
        const report = await decryptFile(interopPath(entry.file), out, {
          keys: [{ key: Buffer.from(entry.key, 'hex') }],
          cipherFactory: factory,
        });
        expect(report.tracks.some((t) => t.schemes.includes(entry.scheme))).toBe(true);
        const ours = byTrack(await listSamples(out));
        const reference = byTrack(await listSamples(interopPath(entry.reference)));
        expect([...ours.keys()].sort()).toEqual([...reference.keys()].sort());
        for (const [track, list] of reference)
          expect(ours.get(track), `track ${track}`).toEqual(list);
      });
    }

    it(`${entry.file}: the output is clear and well formed`, async () => {
      const out = path.join(work, `clear-${entry.file}`);
      await decryptFile(interopPath(entry.file), out, {
        keys: [{ key: Buffer.from(entry.key, 'hex') }],
      });
      const report = await inspectFile(out);
      expect(report.encrypted).toBe(false);
      expect(report.pssh).toEqual([]);
      const types = JSON.stringify(
        parseBoxes(readFileSync(out)).map(function walk(b): unknown {
          return [b.type, ...(b.children ?? []).map(walk)];
        }),
      );
      for (const gone of ['senc', 'saiz', 'saio', 'pssh', 'sinf', 'encv', 'enca'])
        expect(types).not.toContain(`"${gone}"`);
    });
  }

  it('sidx references sizes that match the rewritten fragments', async () => {
    const entry = manifest!.find((e) => e.file.startsWith('prog_8s'))!;
    const out = path.join(work, 'sidx-check.mp4');
    await decryptFile(interopPath(entry.file), out, {
      keys: [{ key: Buffer.from(entry.key, 'hex') }],
    });
    const boxes = parseBoxes(readFileSync(out), 0, undefined, { containers: new Set() });
    let checked = 0;
    boxes.forEach((b, i) => {
      if (b.type !== 'sidx') return;
      const sidx = parseSegmentIndex(b);
      expect(sidx.firstOffset).toBe(0);
      // Each reference covers the moof + mdat that follow the sidx.
      const covered = boxes.slice(i + 1, i + 3).reduce((n, x) => n + x.size, 0);
      expect(sidx.references[0]!.referencedSize).toBe(covered);
      checked++;
    });
    expect(checked).toBe(2);
  });

  it('inspect reports the scheme, KID and pssh of each file', async () => {
    const cenc = await inspectFile(interopPath('prog_8s_enc_dashinit.mp4'));
    expect(cenc.tracks.map((t) => t.protection?.scheme)).toEqual(['cenc', 'cenc']);
    expect(cenc.tracks[0]!.protection?.defaults?.kid).toBe('cd7eb9ff-88f3-4cae-b061-85b00024e4c2');
    expect(cenc.pssh[0]).toMatchObject({
      system: 'common',
      version: 1,
      kids: ['cd7eb9ff-88f3-4cae-b061-85b00024e4c2'],
    });
    expect(cenc.fragments.count).toBe(2);
    const cbcs = await inspectFile(interopPath('cbcs.mp4'));
    expect(cbcs.tracks[0]!.protection?.defaults).toMatchObject({
      pattern: '1:9',
      ivSize: 0,
      constantIv: 'cbe3327da85a1e7a74496db552dfe6d0',
    });
    expect(cbcs.tracks[1]!.protection).toBeUndefined();
    expect(cbcs.pssh.map((p) => p.system)).toEqual(['playready', 'widevine']);
  });

  it.skipIf(!hasFfmpeg())(
    'ffmpeg decodes our cenc output to the same frames as its own decryption',
    async () => {
      const entry = manifest!.find((e) => e.scheme === 'cenc')!;
      const out = path.join(work, 'ffmpeg-check.mp4');
      await decryptFile(interopPath(entry.file), out, {
        keys: [{ key: Buffer.from(entry.key, 'hex') }],
      });
      const theirs = await ffmpegOutput([
        '-decryption_key',
        entry.key,
        '-i',
        interopPath(entry.file),
        '-map',
        '0',
        '-c',
        'copy',
        '-f',
        'framemd5',
        '-',
      ]);
      const ours = await ffmpegOutput([
        '-i',
        out,
        '-map',
        '0',
        '-c',
        'copy',
        '-f',
        'framemd5',
        '-',
      ]);
      // stream, dts, pts, duration, size, md5; ffmpeg adds side data (S=...) on its own decrypted packets.
      const frames = (s: string): string[] =>
        s
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .map((l) => l.split(',').slice(0, 6).join(','));
      expect(frames(ours).length).toBeGreaterThan(600);
      expect(frames(ours)).toEqual(frames(theirs));
    },
  );

  it('wrong keys are detected where the codec allows it, and leave no output', async () => {
    for (const file of ['prog_8s_enc_dashinit.mp4', 'cbcs_audio.mp4']) {
      const out = path.join(work, `wrong-${file}`);
      await expect(
        decryptFile(interopPath(file), out, { keys: [{ key: new Uint8Array(16).fill(9) }] }),
      ).rejects.toMatchObject({ code: 'MEDIA_WRONG_KEY' });
      expect(readdirSync(work).filter((n) => n.includes(`wrong-${file}`))).toEqual([]);
    }
  });
});
