/**
 * Live streams stay playable by ffmpeg: pssh boxes in every moof (ISO/IEC 23001-7 §8.1
 * allows them there) must not disturb a standard demuxer. ffmpeg takes a single
 * -decryption_key, so the decryption check uses one key period; the rotated stream is
 * checked for demuxing (every packet, with its size).
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { packageFile } from '../../src/media/package/packager.js';
import { ffmpegOutput, hasFfmpeg, makeClip } from '../helpers/ffmpeg.js';
import { KEY, MAIN_KEY, hexBytes, outPath } from './package-helpers.js';

/** Per stream, `size:md5` of every packet ffmpeg demuxes (-c copy). */
async function packets(file: string, args: string[] = []): Promise<Map<string, string[]>> {
  const stdout = await ffmpegOutput([
    ...args,
    '-i',
    file,
    '-map',
    '0',
    '-c',
    'copy',
    '-f',
    'framemd5',
    '-',
  ]);
  const out = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [stream, , , , size, hash] = line.split(',').map((c) => c.trim());
    out.set(stream!, [...(out.get(stream!) ?? []), `${size}:${hash}`]);
  }
  return out;
}

const sizesOnly = (m: Map<string, string[]>): Map<string, string[]> =>
  new Map([...m].map(([s, l]) => [s, l.map((e) => e.split(':')[0]!)]));

const written: string[] = [];
afterAll(() => written.forEach((f) => rmSync(f, { force: true })));

describe.skipIf(!hasFfmpeg())('ffmpeg reads live streams with pssh in every moof', () => {
  for (const scheme of ['cenc', 'cbcs'] as const) {
    it(`${scheme}: decrypts to the same packets as the clear clip`, async () => {
      const clip = await makeClip({ video: 'h264', audio: 'aac', seconds: 4 });
      const output = outPath(`live-ff-${scheme}`);
      written.push(output);
      await packageFile({
        input: clip,
        output,
        scheme,
        key: MAIN_KEY,
        fragmentMs: 1000,
        psshInMoof: true,
        embeddedLicenses: [Uint8Array.of(1, 2, 3)],
        cipherFactory: jsCipherFactory,
      });
      expect(await packets(output, ['-decryption_key', KEY])).toEqual(await packets(clip));
    });
  }

  it('demuxes a rotated stream: every packet, at its size', async () => {
    const clip = await makeClip({ video: 'h264', audio: 'aac', seconds: 4 });
    const output = outPath('live-ff-rotated');
    written.push(output);
    const rotation = [2, 3].map((n) => ({
      kid: hexBytes(String(n).repeat(32)),
      key: hexBytes(String(n + 4).repeat(32)),
    }));
    await packageFile({
      input: clip,
      output,
      scheme: 'cenc',
      key: MAIN_KEY,
      rotationKeys: rotation,
      rotateEvery: 1,
      fragmentMs: 1000,
      psshInMoof: true,
      cipherFactory: jsCipherFactory,
    });
    expect(sizesOnly(await packets(output))).toEqual(sizesOnly(await packets(clip)));
  });
});
