import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpeg, hasFfmpeg, makeClip } from '../helpers/ffmpeg.js';
import { runCli } from '../helpers/media/cli-run.js';
import { byTrack, listSamples } from '../helpers/samples.js';

const run = promisify(execFile);
const KEY = '3f1c2a9b8e7d6c5b4a39281706f5e4d3';
const KID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const work = mkdtempSync(path.join(tmpdir(), 'kw-ffmpeg-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Encrypts a clip the way ffmpeg's mov muxer does (flat file, encryption info in stbl). */
async function ffmpegEncrypt(clip: string, name: string, extra: string[] = []): Promise<string> {
  const out = path.join(work, name);
  await ffmpeg([
    '-i',
    clip,
    '-map',
    '0',
    '-c',
    'copy',
    '-encryption_scheme',
    'cenc-aes-ctr',
    '-encryption_key',
    KEY,
    '-encryption_kid',
    KID,
    ...extra,
    out,
  ]);
  return out;
}

async function expectSameSamples(ours: string, clear: string): Promise<void> {
  const a = byTrack(await listSamples(ours));
  const b = byTrack(await listSamples(clear));
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [track, list] of b) expect(a.get(track), `track ${track}`).toEqual(list);
}

/** ffmpeg decodes every frame of the file without a single error line. */
async function expectFfmpegReads(file: string): Promise<void> {
  const { stderr } = await run('ffmpeg', [
    '-v',
    'error',
    '-nostdin',
    '-i',
    file,
    '-f',
    'null',
    '-',
  ]);
  expect(stderr).toBe('');
  const { stdout } = await run('ffprobe', [
    '-v',
    'error',
    '-show_entries',
    'stream=codec_name',
    '-of',
    'csv=p=0',
    file,
  ]);
  expect(stdout.trim().split('\n').sort()).toEqual(expect.arrayContaining(['aac']));
}

describe.skipIf(!hasFfmpeg())('keywarden decrypt on files ffmpeg encrypted', () => {
  let clip = '';
  let encrypted = '';
  beforeAll(async () => {
    clip = await makeClip({ video: 'h264', audio: 'aac', seconds: 2 });
    encrypted = await ffmpegEncrypt(clip, 'h264-cenc.mp4');
  });

  it('restores the clear clip sample for sample, and ffmpeg plays the result', async () => {
    const out = path.join(work, 'h264-clear.mp4');
    const r = await runCli(['decrypt', encrypted, out, '--key', `${KID}:${KEY}`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/decrypted \d+ samples/);
    await expectSameSamples(out, clip);
    await expectFfmpegReads(out);
  });

  it('accepts the key alone, in base64, and reports JSON', async () => {
    const out = path.join(work, 'h264-b64.mp4');
    const r = await runCli([
      'decrypt',
      encrypted,
      out,
      '--key',
      Buffer.from(KEY, 'hex').toString('base64'),
      '--json',
    ]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { tracks: { kids: string[]; schemes: string[] }[] };
    expect(report.tracks).toHaveLength(2);
    expect(report.tracks[0]!.kids).toEqual(['a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90']);
    await expectSameSamples(out, clip);
  });

  it('moov before mdat (faststart): chunk offsets follow the smaller moov', async () => {
    const enc = await ffmpegEncrypt(clip, 'h264-faststart.mp4', ['-movflags', '+faststart']);
    const out = path.join(work, 'h264-faststart-clear.mp4');
    expect((await runCli(['decrypt', enc, out, '--key', `${KID}:${KEY}`])).code).toBe(0);
    await expectSameSamples(out, clip);
    await expectFfmpegReads(out);
  });

  it('H.265 too', async () => {
    const hevc = await makeClip({ video: 'h265', audio: 'aac', seconds: 2 });
    const enc = await ffmpegEncrypt(hevc, 'h265-cenc.mp4');
    const out = path.join(work, 'h265-clear.mp4');
    expect((await runCli(['decrypt', enc, out, '--key', `${KID}:${KEY}`])).code).toBe(0);
    await expectSameSamples(out, hevc);
    await expectFfmpegReads(out);
  });

  it('a wrong key fails with 7013 and leaves nothing behind', async () => {
    const out = path.join(work, 'wrong', 'x.mp4');
    mkdirSync(path.dirname(out), { recursive: true });
    const r = await runCli([
      'decrypt',
      encrypted,
      out,
      '--key',
      `${KID}:00112233445566778899aabbccddeeff`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('7013');
    expect(readdirSync(path.dirname(out))).toEqual([]);
  });

  it('a key for another KID fails with 7012 naming the KID needed', async () => {
    const r = await runCli([
      'decrypt',
      encrypted,
      path.join(work, 'nokey.mp4'),
      '--key',
      `00000000000000000000000000000001:${KEY}`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('7012');
    expect(r.stderr).toContain('a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90');
  });

  it('a clear file fails with 6017', async () => {
    const r = await runCli(['decrypt', clip, path.join(work, 'clear-in.mp4'), '--key', KEY]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('6017');
  });

  it('inspect shows the scheme and KID, as text and JSON', async () => {
    const text = await runCli(['inspect', encrypted]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('cenc');
    expect(text.stdout).toContain('a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90');
    const json = JSON.parse((await runCli(['inspect', encrypted, '--json'])).stdout) as {
      tracks: { codec: string }[];
    };
    expect(json.tracks.map((t) => t.codec)).toEqual(['avc1', 'mp4a']);
  });
});
