import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { packageFile } from '../../src/media/package/packager.js';
import type { CencScheme } from '../../src/media/sample-crypto.js';
import { hasFfmpeg, makeClip, type ClipSpec } from '../helpers/ffmpeg.js';
import { KEY, MAIN_KEY, outPath } from './package-helpers.js';

const run = promisify(execFile);

/** Per stream, the hash (and size) of every packet of `ffmpeg -c copy -f framemd5`. */
async function framemd5(
  file: string,
  args: string[] = [],
  map = ['-map', '0'],
): Promise<Map<string, string[]>> {
  const { stdout } = await run(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-nostdin',
      ...args,
      '-i',
      file,
      ...map,
      '-c',
      'copy',
      '-f',
      'framemd5',
      '-',
    ],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const out = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const cols = line.split(',').map((c) => c.trim());
    // stream, dts, pts, duration, size, hash: timestamps move with edit lists, payloads must not
    const [stream, , , , size, hash] = cols;
    out.set(stream!, [...(out.get(stream!) ?? []), `${size}:${hash}`]);
  }
  return out;
}

/** What ffmpeg prints on stderr while decoding every stream of the decrypted file. */
async function decodeErrors(file: string): Promise<string> {
  const { stderr } = await run(
    'ffmpeg',
    [
      '-hide_banner',
      '-nostdin',
      '-v',
      'error',
      '-decryption_key',
      KEY,
      '-i',
      file,
      '-f',
      'null',
      '-',
    ],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return stderr;
}

const written: string[] = [];
afterAll(() => written.forEach((f) => rmSync(f, { force: true })));

async function packaged(
  spec: ClipSpec,
  scheme: CencScheme,
  name: string,
): Promise<{ clip: string; ours: string }> {
  const clip = await makeClip(spec);
  const ours = outPath(name);
  written.push(ours);
  await packageFile({
    input: clip,
    output: ours,
    scheme,
    key: MAIN_KEY,
    cipherFactory: jsCipherFactory,
  });
  return { clip, ours };
}

const CLIPS: Record<string, ClipSpec> = {
  'h264+aac': { video: 'h264', audio: 'aac', seconds: 4 },
  'h265+aac': { video: 'h265', audio: 'aac', seconds: 4 },
  'h264+aac, fragmented input': { video: 'h264', audio: 'aac', seconds: 4, fragmented: true },
  'h265, fragmented input': { video: 'h265', seconds: 4, fragmented: true },
};

describe.skipIf(!hasFfmpeg())('ffmpeg decrypts what keywarden packages', () => {
  for (const scheme of ['cenc', 'cbcs', 'cbc1'] as const) {
    for (const [name, spec] of Object.entries(CLIPS)) {
      if (scheme === 'cbc1' && name !== 'h264+aac') continue; // cbc1 is not required of ffmpeg; one case shows it works
      it(`${scheme}, ${name}: same packets per stream, and they decode without errors`, async () => {
        const { clip, ours } = await packaged(
          spec,
          scheme,
          `ff-${scheme}-${name.replace(/\W+/g, '-')}`,
        );
        const expected = await framemd5(clip);
        const actual = await framemd5(ours, ['-decryption_key', KEY]);
        expect([...actual.keys()]).toEqual([...expected.keys()]);
        for (const [stream, hashes] of expected)
          expect(actual.get(stream), `stream ${stream}`).toEqual(hashes);
        expect(await decodeErrors(ours)).toBe('');
      });
    }
  }

  it('cens: video packets match (ffmpeg 5.1 also decrypts the partial last block of full-sample audio, which §9.7 leaves clear)', async () => {
    const { clip, ours } = await packaged(CLIPS['h264+aac']!, 'cens', 'ff-cens');
    const expected = await framemd5(clip, [], ['-map', '0:v']);
    expect(await framemd5(ours, ['-decryption_key', KEY], ['-map', '0:v'])).toEqual(expected);
  });

  it('without the key the packets differ: the content really is encrypted', async () => {
    const { clip, ours } = await packaged(CLIPS['h264+aac']!, 'cbcs', 'ff-nokey');
    const clear = await framemd5(clip);
    const raw = await framemd5(ours);
    for (const [stream, hashes] of clear) {
      const same = hashes.filter((h, i) => raw.get(stream)?.[i] === h).length;
      expect(same, `stream ${stream}`).toBeLessThan(hashes.length / 10);
    }
  });
});
