/**
 * Test helpers: encoder variants made with ffmpeg, their video samples, and ffmpeg's own
 * idea of every slice header's length (the trace_headers bitstream filter), which serves as
 * an independent oracle for the packager's slice header parsers.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseFile } from '../../../../src/media/movie.js';
import { trackSamples } from '../../../../src/media/samples.js';
import { MEDIA_CACHE, ffmpeg } from '../../../helpers/ffmpeg.js';

const run = promisify(execFile);

/** Makes (or reuses) a 2-second clip with the given video encoder arguments. */
export async function makeVariant(name: string, encoder: string[], seconds = 2): Promise<string> {
  const out = path.join(MEDIA_CACHE, `variant-${name}.mp4`);
  if (existsSync(out)) return out;
  mkdirSync(MEDIA_CACHE, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp.mp4`;
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=320x240:rate=25:duration=${seconds}`,
    ...encoder,
    tmp,
  ]);
  await rename(tmp, out);
  return out;
}

/** The video track of a flat clip: its decoder configuration payload and its samples. */
export interface ClipVideo {
  readonly format: string;
  readonly config: Uint8Array;
  readonly samples: Uint8Array[];
}

/** Reads the first video track of a flat MP4. */
export function readClipVideo(file: string): ClipVideo {
  const buf = readFileSync(file);
  const movie = parseFile(buf).movie;
  const track = movie?.tracks.find((t) => t.handler.handlerType === 'vide');
  const entry = track?.descriptions.entries[0];
  const config = entry?.children.find((c) => c.type === 'avcC' || c.type === 'hvcC');
  if (!track || !entry || !config) throw new Error(`${file} has no H.264/H.265 video track`);
  const samples = trackSamples(track).map((s) => buf.subarray(s.offset, s.offset + s.size));
  return { format: entry.format, config: config.payload, samples };
}

const ELEMENT = /^(\d+)\s+(\S+)\s+([01]+) = /;

/**
 * ffmpeg's slice header lengths in bits, in decode order: RBSP bits from the start of the
 * NAL unit header to the end of slice_header() (H.264) or byte_alignment() (H.265).
 */
export async function traceSliceHeaderBits(file: string): Promise<number[]> {
  const { stderr } = await run(
    'ffmpeg',
    [
      '-hide_banner',
      '-nostdin',
      '-i',
      file,
      '-map',
      '0:v',
      '-c',
      'copy',
      '-bsf:v',
      'trace_headers',
      '-f',
      'null',
      '-',
    ],
    { maxBuffer: 512 * 1024 * 1024 },
  );
  const out: number[] = [];
  let inSlice = false;
  let end = 0;
  const flush = (): void => {
    if (inSlice) out.push(end);
    inSlice = false;
  };
  for (const raw of stderr.split('\n')) {
    if (!raw.startsWith('[trace_headers')) continue;
    const line = raw.replace(/^\[trace_headers @ [^\]]*\] /, '');
    const m = ELEMENT.exec(line);
    if (m) {
      // cabac_alignment_one_bit belongs to slice_data() (H.264 §7.3.4), not to the header.
      if (m[2] !== 'cabac_alignment_one_bit') end = Number(m[1]) + (m[3]?.length ?? 0);
      continue;
    }
    if (/^[A-Z]/.test(line)) {
      flush();
      inSlice = line.startsWith('Slice Header') || line.startsWith('Slice Segment Header');
    }
  }
  flush();
  return out;
}

/** Emulation-prevention bytes among escaped bytes [from, to) of a NAL unit. */
export function countEmulationBytes(nal: Uint8Array, to: number): number {
  let zeros = 0;
  let count = 0;
  for (let i = 0; i < Math.min(to, nal.length); i++) {
    const b = nal[i]!;
    if (zeros >= 2 && b === 3) {
      count++;
      zeros = 0;
      continue;
    }
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return count;
}
