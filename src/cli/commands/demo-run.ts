import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isKeywardenError } from '../../errors/index.js';
import { decryptFile } from '../../media/decrypt/index.js';
import { inspectFile } from '../../media/inspect.js';
import { packageFile } from '../../media/package/packager.js';
import type { CencScheme } from '../../media/sample-crypto.js';
import { compareSamples, digestSamples } from '../../media/sample-digest.js';
import { nativeInfo } from '../../native/binding.js';
import { agentFlow } from './demo-agent.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLIPS = ['demo-h264-aac.mp4', 'demo-h265.mp4'].map((f) =>
  path.join(ROOT, 'test', 'fixtures', 'media', f),
);
const SCHEMES: readonly CencScheme[] = ['cenc', 'cbcs', 'cens', 'cbc1'];

interface Key {
  kid: Uint8Array;
  key: Uint8Array;
}

const newKey = (): Key => ({ kid: randomBytes(16), key: randomBytes(16) });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ms = (t0: bigint): string => `${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`;

/** One step of the demo: prints a line, returns whether it held. */
type Step = (work: string) => Promise<boolean>;

let checks = 0;

function line(ok: boolean, text: string): boolean {
  checks++;
  process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} ${text}\n`);
  return ok;
}

/** Packages `clip` with `scheme`, decrypts it back and compares every sample with the source. */
function roundTrip(clip: string, scheme: CencScheme, rotate: boolean): Step {
  return async (work) => {
    const key = newKey();
    const rotation = rotate ? [newKey(), newKey()] : [];
    const enc = path.join(
      work,
      `${path.basename(clip, '.mp4')}-${scheme}${rotate ? '-rot' : ''}.mp4`,
    );
    const dec = enc.replace(/\.mp4$/, '-clear.mp4');
    const t0 = process.hrtime.bigint();
    const packaged = await packageFile({
      input: clip,
      output: enc,
      scheme,
      key,
      rotationKeys: rotation,
      fragmentMs: 1000,
    });
    const info = await inspectFile(enc);
    await decryptFile(enc, dec, { keys: [key, ...rotation] });
    const problems = compareSamples(await digestSamples(dec), await digestSamples(clip));
    const tracks = info.tracks
      .map((t) => `${t.handler}:${t.protection?.scheme ?? 'clear'}`)
      .join(' ');
    const what = `${path.basename(clip)} ${scheme}${rotate ? ` + key rotation (${packaged.kids.length} KIDs)` : ''}`;
    return line(
      problems.length === 0,
      `${what.padEnd(44)} ${packaged.fragments} fragments, ${tracks}, ${ms(t0)}${problems.length ? ` — ${problems.join('; ')}` : ''}`,
    );
  };
}

/** A wrong key must be refused with a coded error, not produce garbage. */
function wrongKey(clip: string): Step {
  return async (work) => {
    const key = newKey();
    const enc = path.join(work, 'wrong-key.mp4');
    await packageFile({ input: clip, output: enc, scheme: 'cenc', key });
    const dec = path.join(work, 'wrong-key-clear.mp4');
    try {
      await decryptFile(enc, dec, { keys: [{ kid: key.kid, key: randomBytes(16) }] });
      return line(false, 'a wrong key was not detected');
    } catch (err) {
      const ok = isKeywardenError(err) && !existsSync(dec);
      return line(
        ok,
        `a wrong key is refused: ${isKeywardenError(err) ? `error ${err.number} ${err.code}` : String(err)}, no output left`,
      );
    }
  };
}

/** Where ffmpeg is installed, it must decrypt our cenc output to the source, frame for frame. */
function ffmpegCheck(clip: string): Step {
  return async (work) => {
    if (spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status !== 0) {
      process.stdout.write('  skip ffmpeg cross-check (ffmpeg is not installed)\n');
      return true;
    }
    const key = newKey();
    const enc = path.join(work, 'ffmpeg-check.mp4');
    await packageFile({ input: clip, output: enc, scheme: 'cenc', key });
    // framemd5 columns: stream, dts, pts, duration, size, hash[, side data...]. Timestamps
    // differ where ffmpeg reads edit lists of fragmented files differently; payloads must not.
    const md5 = (args: string[]): string =>
      spawnSync(
        'ffmpeg',
        ['-hide_banner', '-loglevel', 'error', ...args, '-c', 'copy', '-f', 'framemd5', '-'],
        { encoding: 'utf8' },
      )
        .stdout.split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.split(',').map((f) => f.trim()))
        .sort((a, b) => Number(a[0]) - Number(b[0])) // stable: keeps each stream's order
        .map((f) => `${f[0]} ${f[5]}`)
        .join('\n');
    const ours = md5(['-decryption_key', hex(key.key), '-i', enc]);
    return line(
      ours !== '' && ours === md5(['-i', clip]),
      'ffmpeg -decryption_key decrypts our cenc output to the source, packet for packet',
    );
  };
}

/** Runs the demo: every check prints one line; a failed check sets exit code 1. */
export async function runDemo(opts: { keep?: boolean }): Promise<void> {
  const info = nativeInfo();
  process.stdout.write(
    [
      'keywarden demo: package clear clips with Common Encryption, decrypt them, verify every sample.',
      `  AES: native addon on ${info.openssl}${info.cpuAes ? ' with CPU AES instructions' : ''}`,
      '',
    ].join('\n'),
  );
  const clips = CLIPS.filter((c) => existsSync(c));
  if (clips.length === 0) {
    process.stdout.write(
      `  the demo clips are missing (expected under ${path.dirname(CLIPS[0] ?? '')}); nothing to do\n`,
    );
    return;
  }
  const [main = '', ...rest] = clips;
  const steps: Step[] = [
    ...SCHEMES.map((s) => roundTrip(main, s, false)),
    ...rest.flatMap((c) => [roundTrip(c, 'cenc', false), roundTrip(c, 'cbcs', false)]),
    roundTrip(main, 'cenc', true),
    roundTrip(main, 'cbcs', true),
    wrongKey(main),
    ffmpegCheck(main),
  ];
  const work = await mkdtemp(path.join(os.tmpdir(), 'keywarden-demo-'));
  let failed = 0;
  try {
    for (const step of steps) if (!(await step(work))) failed++;
    process.stdout.write('\n  The whole system on loopback: head-end, agent, license, playback:\n');
    failed += await agentFlow(main, work, line);
  } finally {
    if (opts.keep) process.stdout.write(`\n  files kept in ${work}\n`);
    else await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(
    [
      '',
      failed === 0 ? `All ${checks} checks held.` : `${failed} of ${checks} checks failed.`,
      'Still to come: the local playback daemon.',
      '',
    ].join('\n'),
  );
  if (failed > 0) process.exitCode = 1;
}
