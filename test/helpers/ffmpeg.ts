import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { hasTool } from './tools.js';

const run = promisify(execFile);

/** Scratch space for generated media, shared by the tests and kept between runs. */
export const MEDIA_CACHE = path.resolve(import.meta.dirname, '..', '.tmp', 'media');

/** True when ffmpeg and ffprobe are installed. CI installs them; elsewhere tests skip visibly. */
export function hasFfmpeg(): boolean {
  return hasTool('ffmpeg') && hasTool('ffprobe');
}

/** Runs ffmpeg quietly; rejects with its stderr. */
export async function ffmpeg(args: string[]): Promise<void> {
  await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args], {
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Runs ffmpeg and returns its stdout (for -f framemd5 and the like). */
export async function ffmpegOutput(args: string[]): Promise<string> {
  const { stdout } = await run(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-nostdin', ...args],
    {
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  return stdout;
}

/** What a generated clip contains. */
export interface ClipSpec {
  video?: 'h264' | 'h265';
  audio?: 'aac';
  seconds?: number;
  /** Write a fragmented MP4 (ISO BMFF fragments) instead of a flat one. */
  fragmented?: boolean;
  /** Video size, default 320x240. */
  size?: string;
}

/**
 * Makes (or reuses) a small clear clip with ffmpeg's synthetic sources. H.264 uses several
 * slices per frame and B-frames so that subsample maps have real work to do.
 */
export async function makeClip(spec: ClipSpec): Promise<string> {
  const seconds = spec.seconds ?? 2;
  const size = spec.size ?? '320x240';
  const name = `${spec.video ?? 'novideo'}-${spec.audio ?? 'noaudio'}-${seconds}s-${size}${spec.fragmented ? '-frag' : ''}.mp4`;
  const out = path.join(MEDIA_CACHE, name);
  if (existsSync(out)) return out;
  mkdirSync(MEDIA_CACHE, { recursive: true });
  const args: string[] = [];
  if (spec.video)
    args.push('-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25:duration=${seconds}`);
  if (spec.audio)
    args.push('-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`);
  if (spec.video === 'h264')
    args.push(
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-g',
      '25',
      '-bf',
      '2',
      '-x264-params',
      'slices=2',
      '-pix_fmt',
      'yuv420p',
    );
  if (spec.video === 'h265')
    args.push(
      '-c:v',
      'libx265',
      '-preset',
      'veryfast',
      '-g',
      '25',
      '-x265-params',
      'log-level=error:slices=2',
      '-pix_fmt',
      'yuv420p',
      '-tag:v',
      'hvc1',
    );
  if (spec.audio) args.push('-c:a', 'aac', '-b:a', '96k');
  if (spec.fragmented) args.push('-movflags', '+frag_keyframe+empty_moov+default_base_moof');
  const tmp = `${out}.${process.pid}.tmp.mp4`;
  await ffmpeg([...args, tmp]);
  const { rename } = await import('node:fs/promises');
  await rename(tmp, out);
  return out;
}
