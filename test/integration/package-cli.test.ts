import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { registerPackage } from '../../src/cli/commands/package.js';
import { decryptBytes } from '../../src/media/decrypt/index.js';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { parseFile } from '../../src/media/movie.js';
import { MEDIA_CACHE, ffmpeg, hasFfmpeg, makeClip } from '../helpers/ffmpeg.js';
import { KEY, KID, MAIN_KEY, outPath, payloadsByTrack } from './package-helpers.js';

const KEYARG = `${KID}:${KEY}`;
const written: string[] = [];
afterAll(() => written.forEach((f) => rmSync(f, { force: true })));
afterEach(() => vi.restoreAllMocks());

/** Runs `keywarden package ...args` on a fresh program; resolves to stdout, rejects with the error. */
async function cli(...args: string[]): Promise<string> {
  const program = new Command('keywarden')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerPackage(program);
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  await program.parseAsync(['node', 'keywarden', 'package', ...args]);
  return out;
}

async function cliError(...args: string[]): Promise<string | undefined> {
  try {
    await cli(...args);
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

/** Leftover temporary files of AtomicFile next to `output`. */
function leftovers(output: string): string[] {
  const base = path.basename(output);
  return readdirSync(path.dirname(output)).filter((f) => f.startsWith(`.${base}.`));
}

async function clipWith(name: string, args: string[]): Promise<string> {
  const out = path.join(MEDIA_CACHE, `pkgcli-${name}.mp4`);
  if (!existsSync(out)) await ffmpeg([...args, out]);
  return out;
}

describe.skipIf(!hasFfmpeg())('keywarden package (command line)', () => {
  it('packages a clip and prints what it did', async () => {
    const clip = await makeClip({ video: 'h264', audio: 'aac', seconds: 2 });
    const output = outPath('cli-ok');
    written.push(output);
    const text = await cli(
      clip,
      output,
      '--scheme',
      'cbcs',
      '--key',
      KEYARG,
      '--license-url',
      'https://l.example/',
      '--fragment-ms',
      '1000',
    );
    expect(text).toMatch(/packaged .* cbcs, \d+ fragments/);
    expect(text).toMatch(
      /track 1: video 'avc1', 50 samples, encrypted, KID 00112233445566778899aabbccddeeff/,
    );
    expect(text).toMatch(/track 2: audio 'mp4a', \d+ samples, encrypted/);
    expect(
      parseFile(readFileSync(output)).movie?.tracks.map((t) => t.descriptions.entries[0]?.format),
    ).toEqual(['encv', 'enca']);
  });

  it('prints the report as JSON with --json', async () => {
    const clip = await makeClip({ video: 'h265', seconds: 2 });
    const output = outPath('cli-json');
    written.push(output);
    const report = JSON.parse(
      await cli(
        clip,
        output,
        '--scheme',
        'cenc',
        '--key',
        KEYARG,
        '--iv',
        '0011223344556677',
        '--json',
      ),
    ) as {
      scheme: string;
      kids: string[];
    };
    expect(report).toMatchObject({ scheme: 'cenc', kids: [KID] });
  });

  it.each([
    ['no --key', ['--scheme', 'cenc'], 'CLI_USAGE'],
    ['a key without its KID', ['--scheme', 'cenc', '--key', KEY], 'CLI_BAD_KEY'],
    ['--key twice', ['--scheme', 'cenc', '--key', KEYARG, '--key', KEYARG], 'CLI_USAGE'],
    ['a malformed key', ['--scheme', 'cenc', '--key', 'xyz:abc'], 'CLI_BAD_KEY'],
    [
      'an --iv that is not hex',
      ['--scheme', 'cenc', '--key', KEYARG, '--iv', 'nothex'],
      'MEDIA_PACKAGE_BAD_IV',
    ],
    [
      'an 8-byte --iv for cbcs',
      ['--scheme', 'cbcs', '--key', KEYARG, '--iv', '0011223344556677'],
      'MEDIA_PACKAGE_BAD_IV',
    ],
    [
      '--rotate-every without --rotation-key',
      ['--scheme', 'cenc', '--key', KEYARG, '--rotate-every', '3'],
      'CLI_USAGE',
    ],
    [
      '--fragment-ms that is not a number',
      ['--scheme', 'cenc', '--key', KEYARG, '--fragment-ms', 'soon'],
      'CLI_USAGE',
    ],
    [
      '--license-url that is not a URL',
      ['--scheme', 'cenc', '--key', KEYARG, '--license-url', 'not a url'],
      'CLI_USAGE',
    ],
    ['an unknown scheme', ['--scheme', 'aes', '--key', KEYARG], 'commander.invalidArgument'],
    ['no --scheme', ['--key', KEYARG], 'commander.missingMandatoryOptionValue'],
  ])('refuses %s', async (_what, args, code) => {
    const output = outPath('cli-bad');
    expect(await cliError('in.mp4', output, ...args)).toBe(code);
    expect(existsSync(output)).toBe(false);
  });

  it('refuses a missing input (IO_FAILED) and a file that is not MP4 (MEDIA_NOT_MP4)', async () => {
    const output = outPath('cli-io');
    expect(await cliError('/nonexistent/in.mp4', output, '--scheme', 'cenc', '--key', KEYARG)).toBe(
      'IO_FAILED',
    );
    const junk = path.join(MEDIA_CACHE, 'pkgcli-junk.mp4');
    writeFileSync(junk, 'this is not a movie at all, just text');
    expect(await cliError(junk, output, '--scheme', 'cenc', '--key', KEYARG)).toBe('MEDIA_NOT_MP4');
    expect(existsSync(output)).toBe(false);
  });

  it.each([
    [
      'MPEG-4 part 2 video',
      ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=1', '-c:v', 'mpeg4'],
    ],
    ['AC-3 audio', ['-f', 'lavfi', '-i', 'sine=duration=1', '-c:a', 'ac3']],
  ])('refuses %s with MEDIA_UNSUPPORTED_CODEC and leaves no output behind', async (name, args) => {
    const clip = await clipWith(name.replace(/\W+/g, '-'), args);
    const output = outPath('cli-codec');
    expect(await cliError(clip, output, '--scheme', 'cenc', '--key', KEYARG)).toBe(
      'MEDIA_UNSUPPORTED_CODEC',
    );
    expect(existsSync(output)).toBe(false);
    expect(leftovers(output)).toEqual([]);
  });

  it('refuses input that is already encrypted', async () => {
    const clip = await makeClip({ video: 'h264', seconds: 1 });
    const once = outPath('cli-once');
    written.push(once);
    await cli(clip, once, '--scheme', 'cenc', '--key', KEYARG);
    expect(await cliError(once, outPath('cli-twice'), '--scheme', 'cenc', '--key', KEYARG)).toBe(
      'MEDIA_ALREADY_PROTECTED',
    );
  });

  it('fails on a corrupt bitstream with MEDIA_BITSTREAM and writes nothing', async () => {
    const clip = readFileSync(await makeClip({ video: 'h264', seconds: 1 }));
    // Overwrite the first sample's first NAL length with a length that runs past the sample.
    const movie = parseFile(clip).movie!;
    const stco = movie.tracks[0]!.stbl.children!.find((b) => b.type === 'stco')!;
    const firstChunk = Buffer.from(stco.payload).readUInt32BE(8);
    const broken = Buffer.from(clip);
    broken.writeUInt32BE(0x7ffffff0, firstChunk);
    const input = path.join(MEDIA_CACHE, 'pkgcli-broken.mp4');
    writeFileSync(input, broken);
    const output = outPath('cli-broken');
    expect(await cliError(input, output, '--scheme', 'cenc', '--key', KEYARG)).toBe(
      'MEDIA_BITSTREAM',
    );
    expect(existsSync(output)).toBe(false);
    expect(leftovers(output)).toEqual([]);
  });

  it('copies a subtitle track clear next to the encrypted ones', async () => {
    const srt = path.join(MEDIA_CACHE, 'pkgcli-subs.srt');
    writeFileSync(
      srt,
      '1\n00:00:00,000 --> 00:00:00,900\nhello\n\n2\n00:00:01,000 --> 00:00:01,900\nworld\n',
    );
    const clip = await clipWith('subs', [
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=160x120:rate=25:duration=2',
      '-i',
      srt,
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-pix_fmt',
      'yuv420p',
      '-c:s',
      'mov_text',
    ]);
    const output = outPath('cli-subs');
    written.push(output);
    const text = await cli(clip, output, '--scheme', 'cenc', '--key', KEYARG);
    expect(text).toMatch(/track 2: clear 'tx3g', \d+ samples, clear/); // mov_text fills gaps with empty samples
    const { output: clear } = await decryptBytes(readFileSync(output), {
      keys: [MAIN_KEY],
      cipherFactory: jsCipherFactory,
    });
    const a = payloadsByTrack(clear);
    const b = payloadsByTrack(readFileSync(clip));
    expect(a.get(2)).toEqual(b.get(2));
    expect(a.get(1)!.every((s, i) => s.equals(b.get(1)![i]!))).toBe(true);
  });
});
