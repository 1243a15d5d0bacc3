import { kwError } from '../../errors/index.js';
import type { BoxHeader } from '../box.js';
import { parseMovie, type Movie } from '../movie.js';
import { parseMovieFragment, trackSamples } from '../samples.js';
import type { ByteSource } from '../stream/byte-source.js';
import { readWholeBox, scanTopLevel } from '../stream/top-level-boxes.js';

/** A sample of the clear input: where it is and when it plays, without its bytes. */
export interface SampleRef {
  readonly trackId: number;
  /** Absolute offset in the input. */
  readonly offset: number;
  readonly size: number;
  readonly dts: number;
  readonly cts: number;
  readonly duration: number;
  readonly sync: boolean;
}

/** The clear input as a movie plus its samples in batches (all of a flat file, or one input fragment at a time). */
export interface SampleSource {
  readonly movie: Movie;
  /** Batches of samples; within a track, samples come in decode order. */
  batches(): AsyncGenerator<SampleRef[]>;
}

/**
 * Opens the clear input: finds 'moov' wherever it is (flat files may put it last), then
 * yields the samples of its sample tables and, for fragmented files, each 'moof' in turn
 * (fragmented files may also carry samples in moov, as ffmpeg's frag_keyframe does).
 */
export async function openSampleSource(file: ByteSource): Promise<SampleSource> {
  const headers = await scanTopLevel(file);
  const moovHeader = headers.find((h) => h.type === 'moov');
  if (!moovHeader)
    throw kwError('MEDIA_MISSING_BOX', `${file.name} has no 'moov' box`, { box: 'moov' });
  const movie = parseMovie(await readWholeBox(file, moovHeader));
  const moofs = headers.filter((h) => h.type === 'moof');
  if (moofs.length > 0 && !movie.fragmented) {
    throw kwError('MEDIA_MISSING_BOX', "the input has 'moof' boxes but its moov has no 'mvex'", {
      box: 'mvex',
    });
  }
  return { movie, batches: () => batches(file, movie, moofs) };
}

async function* batches(
  file: ByteSource,
  movie: Movie,
  moofs: readonly BoxHeader[],
): AsyncGenerator<SampleRef[]> {
  const ends = new Map<number, number>();
  const flat: SampleRef[] = [];
  for (const track of movie.tracks) {
    const samples = trackSamples(track, { dataLimit: file.size });
    for (const s of samples) flat.push(ref(track.id, s));
    const last = samples[samples.length - 1];
    ends.set(track.id, last ? last.dts + last.duration : 0);
  }
  if (flat.length > 0) yield flat;
  for (const h of moofs) {
    const fragment = parseMovieFragment(await readWholeBox(file, h), movie, { decodeTimes: ends });
    const out: SampleRef[] = [];
    for (const traf of fragment.trafs) {
      for (const s of traf.samples) out.push(ref(traf.trackId, s));
      ends.set(traf.trackId, traf.endTime);
    }
    if (out.length > 0) yield out;
  }
}

function ref(
  trackId: number,
  s: { offset: number; size: number; dts: number; cts: number; duration: number; sync: boolean },
): SampleRef {
  return {
    trackId,
    offset: s.offset,
    size: s.size,
    dts: s.dts,
    cts: s.cts,
    duration: s.duration,
    sync: s.sync,
  };
}
