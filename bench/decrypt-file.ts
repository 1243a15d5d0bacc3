/**
 * Whole-file decryption: `keywarden decrypt` against `ffmpeg -decryption_key ... -c copy`
 * on the same ~200 MB fragmented cenc file, with `cp` as the floor. Wall time is the median
 * of several runs; peak RSS comes from GNU time (%M). The file is a 40 s 720p H.264 + AAC
 * clip at 40 Mbit/s made by ffmpeg, packaged by keywarden with 2 s fragments.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const work = path.join(root, '.bench', 'decrypt-file');
const cli = path.join(root, 'bin', 'keywarden.js');
const RUNS = 5;

interface Timed {
  seconds: number;
  peakRssMiB: number | null;
}

function timed(cmd: string, args: string[]): Timed {
  const gnuTime = existsSync('/usr/bin/time');
  const start = process.hrtime.bigint();
  const r = gnuTime
    ? spawnSync('/usr/bin/time', ['-f', 'KWRSS %M', cmd, ...args], { encoding: 'utf8' })
    : spawnSync(cmd, args, { encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const m = /KWRSS (\d+)/.exec(r.stderr ?? '');
  return { seconds, peakRssMiB: m ? +(Number(m[1]) / 1024).toFixed(1) : null };
}

function median(runs: Timed[]): Timed {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  const mid = sorted[Math.floor(sorted.length / 2)]!;
  const rss = runs.map((r) => r.peakRssMiB ?? 0);
  return {
    seconds: +mid.seconds.toFixed(3),
    peakRssMiB: runs[0]?.peakRssMiB === null ? null : Math.max(...rss),
  };
}

function makeInput(): { file: string; kid: string; key: string } {
  mkdirSync(work, { recursive: true });
  const clear = path.join(work, 'clear-720p-40mbps.mp4');
  if (!existsSync(clear)) {
    console.error('bench: making the 200 MB clear source with ffmpeg ...');
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=1280x720:rate=25:duration=40',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:sample_rate=48000:duration=40',
      '-vf',
      'noise=alls=12:allf=t',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-b:v',
      '40M',
      '-maxrate',
      '40M',
      '-bufsize',
      '20M',
      '-g',
      '50',
      '-c:a',
      'aac',
      '-b:a',
      '128k',
      clear,
    ]);
  }
  const keyFile = path.join(work, 'key.json');
  const enc = path.join(work, 'cenc-720p-40mbps.mp4');
  if (!existsSync(enc) || !existsSync(keyFile)) {
    const kid = randomBytes(16).toString('hex');
    const key = randomBytes(16).toString('hex');
    console.error('bench: packaging it as fragmented cenc with keywarden ...');
    execFileSync(process.execPath, [
      cli,
      'package',
      clear,
      enc,
      '--scheme',
      'cenc',
      '--key',
      `${kid}:${key}`,
      '--fragment-ms',
      '2000',
    ]);
    execFileSync('sh', ['-c', `printf '{"kid":"%s","key":"%s"}' ${kid} ${key} > '${keyFile}'`]);
  }
  const { kid, key } = JSON.parse(readFileSync(keyFile, 'utf8')) as { kid: string; key: string };
  return { file: enc, kid, key };
}

function framemd5(args: string[]): string[] {
  const out = execFileSync(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      ...args,
      '-map',
      '0:v',
      '-c',
      'copy',
      '-f',
      'framemd5',
      '-',
    ],
    {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  return out
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(',').pop()!.trim());
}

/** Runs the whole-file comparison and returns the figures. */
export async function runDecryptFile(): Promise<object> {
  if (spawnSync('ffmpeg', ['-version']).status !== 0) return { skipped: 'ffmpeg is not installed' };
  if (!existsSync(path.join(root, 'dist', 'cli', 'main.js')))
    execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  const { file, kid, key } = makeInput();
  const bytes = statSync(file).size;
  const out = (name: string): string => path.join(work, name);
  execFileSync('cat', [file], { stdio: 'ignore', maxBuffer: 1 }); // warm the page cache
  const cp: Timed[] = [];
  const ff: Timed[] = [];
  const kw: Timed[] = [];
  // Each tool writes a new file: outputs are removed (untimed) before every run, so that no
  // run pays for freeing the previous run's 200 MB.
  const fresh = (name: string): string => {
    rmSync(out(name), { force: true });
    return out(name);
  };
  for (let i = 0; i < RUNS; i++) {
    cp.push(timed('cp', [file, fresh('cp.mp4')]));
    ff.push(
      timed('ffmpeg', [
        '-hide_banner',
        '-loglevel',
        'error',
        '-y',
        '-decryption_key',
        key,
        '-i',
        file,
        '-c',
        'copy',
        fresh('ffmpeg.mp4'),
      ]),
    );
    kw.push(
      timed(process.execPath, [
        cli,
        'decrypt',
        file,
        fresh('keywarden.mp4'),
        '--key',
        `${kid}:${key}`,
      ]),
    );
  }
  const verified =
    framemd5(['-i', out('keywarden.mp4')]).join() ===
    framemd5(['-i', path.join(work, 'clear-720p-40mbps.mp4')]).join();
  const [mcp, mff, mkw] = [median(cp), median(ff), median(kw)];
  rmSync(out('cp.mp4'), { force: true });
  return {
    file: { bytes, mib: +(bytes / 2 ** 20).toFixed(1), scheme: 'cenc', fragmentMs: 2000 },
    runs: RUNS,
    cp: mcp,
    ffmpeg: mff,
    keywarden: { ...mkw, mibPerSecond: +(bytes / 2 ** 20 / mkw.seconds).toFixed(1) },
    speedupVsFfmpeg: +(mff.seconds / mkw.seconds).toFixed(2),
    targets: { speedupVsFfmpeg: 4, peakRssMiB: 100 },
    outputMatchesClearSource: verified,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await runDecryptFile(), null, 2));
}
