import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { kwError } from '../errors/index.js';
import { parseFile } from './movie.js';
import { parseMovieFragment, trackSamples, type Sample } from './samples.js';

/**
 * One sample as a comparison sees it: the interop rule is that decrypted output must match
 * a reference in every sample's payload, in order, per track, whatever the box layout.
 */
export interface SampleDigest {
  readonly track: number;
  readonly dts: number;
  readonly size: number;
  /** SHA-256 of the payload, first 16 hex digits. */
  readonly hash: string;
}

function digest(buf: Uint8Array, track: number, s: Sample): SampleDigest {
  const payload = buf.subarray(s.offset, s.offset + s.size);
  if (payload.length !== s.size) {
    throw kwError(
      'MEDIA_SAMPLE_OUT_OF_RANGE',
      `track ${track} sample at ${s.offset} runs past the end`,
    );
  }
  return {
    track,
    dts: s.dts,
    size: s.size,
    hash: createHash('sha256').update(payload).digest('hex').slice(0, 16),
  };
}

/** Every sample of an in-memory MP4 (flat or fragmented), in file order. */
export function digestSamplesOf(buf: Uint8Array): SampleDigest[] {
  const parsed = parseFile(buf);
  const movie = parsed.movie;
  if (!movie) throw kwError('MEDIA_MISSING_BOX', "the file has no 'moov' box", { box: 'moov' });
  const out: SampleDigest[] = [];
  for (const t of movie.tracks)
    for (const s of trackSamples(t, { dataLimit: buf.length })) out.push(digest(buf, t.id, s));
  const times = new Map<number, number>();
  for (const box of parsed.boxes) {
    if (box.type !== 'moof') continue;
    for (const tf of parseMovieFragment(box, movie, { decodeTimes: times }).trafs) {
      times.set(tf.trackId, tf.endTime);
      for (const s of tf.samples) out.push(digest(buf, tf.trackId, s));
    }
  }
  return out;
}

/** {@link digestSamplesOf} for a file (read whole: meant for comparisons, not for large media). */
export async function digestSamples(file: string): Promise<SampleDigest[]> {
  return digestSamplesOf(await readFile(file));
}

/** Samples grouped by track id, each list in decode order. */
export function samplesByTrack(list: readonly SampleDigest[]): Map<number, SampleDigest[]> {
  const m = new Map<number, SampleDigest[]>();
  for (const s of list) {
    const l = m.get(s.track);
    if (l) l.push(s);
    else m.set(s.track, [s]);
  }
  for (const l of m.values()) l.sort((a, b) => a.dts - b.dts);
  return m;
}

/** How two files' samples differ: empty when every track has the same payloads in order. */
export function compareSamples(
  actual: readonly SampleDigest[],
  expected: readonly SampleDigest[],
): string[] {
  const a = samplesByTrack(actual);
  const e = samplesByTrack(expected);
  const problems: string[] = [];
  for (const [track, want] of e) {
    const got = a.get(track) ?? [];
    if (got.length !== want.length)
      problems.push(`track ${track}: ${got.length} samples, expected ${want.length}`);
    const bad = want.findIndex((w, i) => got[i]?.hash !== w.hash || got[i]?.size !== w.size);
    if (bad >= 0) problems.push(`track ${track}: sample ${bad} differs`);
  }
  for (const track of a.keys()) if (!e.has(track)) problems.push(`track ${track} is unexpected`);
  return problems;
}
