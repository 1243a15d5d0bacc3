import { kwError } from '../errors/index.js';
import { findChild, findChildren, requireChild, type Box } from './box.js';
import {
  MAX_RUN_SAMPLES,
  SAMPLE_IS_NON_SYNC,
  TFHD,
  parseChunkOffsets,
  parseCompactSampleSizes,
  parseCompositionOffsets,
  parseMovieFragmentHeader,
  parseSampleSizes,
  parseSampleToChunk,
  parseSyncSamples,
  parseTimeToSample,
  parseTrackFragmentDecodeTime,
  parseTrackFragmentHeader,
  parseTrackRun,
  type SampleSizes,
  type TrackExtends,
  type TrackFragmentHeader,
  type TrackRun,
} from './boxes/index.js';
import { findTrack, type Movie, type Track } from './movie.js';

/** Most samples keywarden accepts in one track of a flat file (a day of 60 fps video is 5.2 M). */
export const MAX_TRACK_SAMPLES = 1 << 24;

/** One media sample. Offsets are absolute in the file the boxes came from. */
export interface Sample {
  readonly offset: number;
  readonly size: number;
  /** Decode time, in the track's timescale. */
  readonly dts: number;
  /** Composition (presentation) time. */
  readonly cts: number;
  readonly duration: number;
  readonly sync: boolean;
  /** 1-based sample_description_index. */
  readonly descriptionIndex: number;
}

/** Options for {@link trackSamples}. */
export interface SampleTableOptions {
  /** Samples must end at or before this offset (the file size); MEDIA_SAMPLE_OUT_OF_RANGE otherwise. */
  readonly dataLimit?: number;
}

function sampleSizes(stbl: Box): SampleSizes {
  const stsz = findChild(stbl, 'stsz');
  if (stsz) return parseSampleSizes(stsz);
  const stz2 = findChild(stbl, 'stz2');
  if (stz2) return parseCompactSampleSizes(stz2);
  throw kwError('MEDIA_MISSING_BOX', "stbl has neither 'stsz' nor 'stz2'", { box: 'stsz' });
}

function checkCount(count: number, sizes: SampleSizes, limit: number): void {
  // A uniform size carries no table that bounds the count: bound it by the data instead.
  const bound = sizes.uniformSize > 0 ? Math.floor(limit / sizes.uniformSize) : count;
  if (count > MAX_TRACK_SAMPLES || count > bound) {
    throw kwError('MEDIA_TOO_LARGE', `a track declares ${count} samples`, { box: 'stsz', count });
  }
}

/** Expands a flat track's sample tables (ISO/IEC 14496-12 §8.6-8.7) into its samples, in decode order. */
export function trackSamples(track: Track, opts: SampleTableOptions = {}): Sample[] {
  const stbl = track.stbl;
  const sizes = sampleSizes(stbl);
  const limit = opts.dataLimit ?? Number.MAX_SAFE_INTEGER;
  checkCount(sizes.count, sizes, limit);
  const n = sizes.count;
  const offsets = chunkLayout(stbl, n);
  const dts = decodeTimes(stbl, n);
  const ctts = findChild(stbl, 'ctts');
  const cto = ctts ? expandCompositionOffsets(ctts, n) : undefined;
  const stss = findChild(stbl, 'stss');
  const sync = stss ? syncFlags(stss, n) : undefined;
  const out: Sample[] = new Array<Sample>(n);
  for (let i = 0; i < n; i++) {
    const size = sizes.sizes ? sizes.sizes[i]! : sizes.uniformSize;
    const offset = offsets.offsets[i]!;
    if (offset + size > limit) throw outOfRange(track.id, i, offset, size, limit);
    const t = dts.times[i]!;
    out[i] = {
      offset,
      size,
      dts: t,
      cts: t + (cto?.[i] ?? 0),
      duration: dts.durations[i]!,
      sync: sync ? sync[i] === 1 : true,
      descriptionIndex: offsets.descriptions[i]!,
    };
  }
  return out;
}

function outOfRange(
  trackId: number,
  index: number,
  offset: number,
  size: number,
  limit: number,
): Error {
  return kwError(
    'MEDIA_SAMPLE_OUT_OF_RANGE',
    `track ${trackId} sample ${index} (${size} bytes at ${offset}) ends beyond ${limit}`,
    {
      trackId,
      index,
      offset,
      size,
    },
  );
}

/** Sample offsets and description indexes from stsc + stco/co64 (+ sizes). */
function chunkLayout(stbl: Box, n: number): { offsets: Float64Array; descriptions: Uint32Array } {
  const stsc = parseSampleToChunk(requireChild(stbl, 'stsc', 'stbl'));
  const chunks = parseChunkOffsets(findChild(stbl, 'stco') ?? requireChild(stbl, 'co64', 'stbl'));
  const sizes = sampleSizes(stbl);
  const offsets = new Float64Array(n);
  const descriptions = new Uint32Array(n);
  let sample = 0;
  const entries = stsc.length / 3;
  for (let e = 0; e < entries && sample < n; e++) {
    const first = stsc[3 * e]!;
    const perChunk = stsc[3 * e + 1]!;
    const description = stsc[3 * e + 2]!;
    const next = e + 1 < entries ? stsc[3 * (e + 1)]! : chunks.length + 1;
    if (first < 1 || next <= first)
      throw kwError('MEDIA_MALFORMED_BOX', `stsc entry ${e} has first_chunk ${first}`, {
        box: 'stsc',
      });
    for (let c = first; c < next && c <= chunks.length && sample < n; c++) {
      let at = chunks[c - 1]!;
      for (let k = 0; k < perChunk && sample < n; k++, sample++) {
        offsets[sample] = at;
        descriptions[sample] = description;
        at += sizes.sizes ? sizes.sizes[sample]! : sizes.uniformSize;
      }
    }
  }
  if (sample < n)
    throw kwError('MEDIA_MALFORMED_BOX', `stsc/stco place ${sample} of ${n} samples`, {
      box: 'stsc',
    });
  return { offsets, descriptions };
}

function decodeTimes(stbl: Box, n: number): { times: Float64Array; durations: Uint32Array } {
  const stts = parseTimeToSample(requireChild(stbl, 'stts', 'stbl'));
  const times = new Float64Array(n);
  const durations = new Uint32Array(n);
  let i = 0;
  let t = 0;
  for (let e = 0; e + 1 < stts.length && i < n; e += 2) {
    const delta = stts[e + 1]!;
    for (let k = 0; k < stts[e]! && i < n; k++, i++) {
      times[i] = t;
      durations[i] = delta;
      t += delta;
    }
  }
  if (i < n)
    throw kwError('MEDIA_MALFORMED_BOX', `stts covers ${i} of ${n} samples`, { box: 'stts' });
  return { times, durations };
}

function expandCompositionOffsets(ctts: Box, n: number): Int32Array {
  const { counts, offsets } = parseCompositionOffsets(ctts);
  const out = new Int32Array(n);
  let i = 0;
  for (let e = 0; e < counts.length && i < n; e++) {
    const end = Math.min(n, i + counts[e]!);
    out.fill(offsets[e]!, i, end);
    i = end;
  }
  return out;
}

function syncFlags(stss: Box, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (const number of parseSyncSamples(stss)) if (number >= 1 && number <= n) out[number - 1] = 1;
  return out;
}

/** One 'trun' of a track fragment and where its samples sit in the fragment's sample list. */
export interface TrackRunInfo {
  readonly box: Box;
  readonly run: TrackRun;
  /** Index of the run's first sample in {@link TrackFragment.samples}. */
  readonly firstSample: number;
  /** Absolute offset of the run's first sample. */
  readonly dataStart: number;
}

/** One 'traf', resolved into samples with absolute offsets. */
export interface TrackFragment {
  readonly trackId: number;
  readonly box: Box;
  readonly header: TrackFragmentHeader;
  /** tfdt baseMediaDecodeTime, when present. */
  readonly baseMediaDecodeTime?: number;
  readonly runs: readonly TrackRunInfo[];
  readonly samples: readonly Sample[];
  /** The base offset the truns' data_offset values are relative to (§8.8.7.1). */
  readonly baseOffset: number;
  /** Decode time after the last sample: where the next fragment continues without tfdt. */
  readonly endTime: number;
}

/** One 'moof'. */
export interface MovieFragment {
  readonly sequenceNumber: number;
  readonly box: Box;
  readonly trafs: readonly TrackFragment[];
}

/** Options for {@link parseMovieFragment}. */
export interface FragmentOptions {
  /** Decode time where each track's previous fragment ended (used when a traf has no tfdt). */
  readonly decodeTimes?: ReadonlyMap<number, number>;
  /** The bytes the samples may span at most (the file size): bounds counts that no table bounds. */
  readonly dataLimit?: number;
}

/**
 * Resolves a 'moof' into per-track sample lists using tfhd, trex defaults, tfdt,
 * default-base-is-moof / base_data_offset and every trun of each traf.
 */
export function parseMovieFragment(
  moof: Box,
  movie: Movie | undefined,
  opts: FragmentOptions = {},
): MovieFragment {
  const sequenceNumber = parseMovieFragmentHeader(requireChild(moof, 'mfhd', 'moof'));
  const trafs: TrackFragment[] = [];
  let previousEnd: number | undefined;
  for (const traf of findChildren(moof, 'traf')) {
    const tf = parseTrackFragment(traf, moof, movie, previousEnd, opts);
    trafs.push(tf);
    previousEnd = tf.runs.length > 0 ? runEnd(tf) : previousEnd;
  }
  return { sequenceNumber, box: moof, trafs };
}

function runEnd(tf: TrackFragment): number {
  const last = tf.samples[tf.samples.length - 1];
  return last ? last.offset + last.size : tf.baseOffset;
}

/** The base data offset of a traf (ISO/IEC 14496-12 §8.8.7.1). */
function baseOffsetOf(
  header: TrackFragmentHeader,
  moof: Box,
  previousEnd: number | undefined,
): number {
  if (header.baseDataOffset !== undefined) return header.baseDataOffset;
  if ((header.flags & TFHD.defaultBaseIsMoof) !== 0 || previousEnd === undefined)
    return moof.offset;
  return previousEnd;
}

function parseTrackFragment(
  traf: Box,
  moof: Box,
  movie: Movie | undefined,
  previousEnd: number | undefined,
  opts: FragmentOptions,
): TrackFragment {
  const header = parseTrackFragmentHeader(requireChild(traf, 'tfhd', 'traf'));
  const track = movie ? findTrack(movie, header.trackId) : undefined;
  if (movie && !track)
    throw kwError('MEDIA_MALFORMED_BOX', `traf for unknown track ${header.trackId}`, {
      box: 'tfhd',
      trackId: header.trackId,
    });
  const tfdt = findChild(traf, 'tfdt');
  const baseMediaDecodeTime = tfdt ? parseTrackFragmentDecodeTime(tfdt) : undefined;
  const baseOffset = baseOffsetOf(header, moof, previousEnd);
  const start = baseMediaDecodeTime ?? opts.decodeTimes?.get(header.trackId) ?? 0;
  const builder = new RunSampleBuilder(
    header,
    track?.trex,
    start,
    opts.dataLimit ?? Number.MAX_SAFE_INTEGER,
  );
  const runs: TrackRunInfo[] = [];
  let cursor = baseOffset;
  for (const box of findChildren(traf, 'trun')) {
    const run = parseTrackRun(box);
    const dataStart = run.dataOffset !== undefined ? baseOffset + run.dataOffset : cursor;
    runs.push({ box, run, firstSample: builder.count, dataStart });
    cursor = builder.addRun(run, dataStart);
  }
  return {
    trackId: header.trackId,
    box: traf,
    header,
    ...(baseMediaDecodeTime !== undefined && { baseMediaDecodeTime }),
    runs,
    samples: builder.samples,
    baseOffset,
    endTime: builder.time,
  };
}

/** Turns truns into samples, applying tfhd then trex defaults. */
class RunSampleBuilder {
  readonly samples: Sample[] = [];
  private readonly description: number;

  constructor(
    private readonly header: TrackFragmentHeader,
    private readonly trex: TrackExtends | undefined,
    public time: number,
    private readonly dataLimit: number,
  ) {
    this.description = header.sampleDescriptionIndex ?? trex?.defaultSampleDescriptionIndex ?? 1;
  }

  get count(): number {
    return this.samples.length;
  }

  /** A tfhd or trex default; required only when the run has no per-sample value. */
  private fallback(
    value: number | undefined,
    trexValue: number | undefined,
    what: string,
    needed: boolean,
  ): number {
    const v = value ?? trexValue;
    if (v !== undefined || !needed) return v ?? 0;
    throw kwError(
      'MEDIA_MISSING_BOX',
      `no ${what} in trun, tfhd or trex for track ${this.header.trackId}`,
      {
        box: 'trex',
      },
    );
  }

  /** tfhd/trex defaults for a run, refusing counts that no table bounds and the data cannot hold. */
  private runDefaults(run: TrackRun): { size: number; duration: number; flags: number } {
    if (this.samples.length + run.sampleCount > MAX_RUN_SAMPLES) {
      throw kwError(
        'MEDIA_TOO_LARGE',
        `track fragment of ${this.header.trackId} has too many samples`,
        { box: 'trun' },
      );
    }
    const h = this.header;
    const some = run.sampleCount > 0;
    const size = this.fallback(
      h.defaultSampleSize,
      this.trex?.defaultSampleSize,
      'sample size',
      some && !run.sizes,
    );
    const duration = this.fallback(
      h.defaultSampleDuration,
      this.trex?.defaultSampleDuration,
      'sample duration',
      some && !run.durations,
    );
    if (!run.sizes && size * run.sampleCount > this.dataLimit) {
      throw kwError(
        'MEDIA_TOO_LARGE',
        `a trun of ${run.sampleCount} samples of ${size} bytes exceeds the file`,
        { box: 'trun' },
      );
    }
    return { size, duration, flags: h.defaultSampleFlags ?? this.trex?.defaultSampleFlags ?? 0 };
  }

  /** Adds a run's samples; returns the offset after its last sample. */
  addRun(run: TrackRun, dataStart: number): number {
    const d = this.runDefaults(run);
    let at = dataStart;
    for (let i = 0; i < run.sampleCount; i++) {
      const flags = run.sampleFlags?.[i] ?? (i === 0 ? run.firstSampleFlags : undefined) ?? d.flags;
      const size = run.sizes ? run.sizes[i]! : d.size;
      const duration = run.durations ? run.durations[i]! : d.duration;
      const cts = this.time + (run.compositionOffsets?.[i] ?? 0);
      const sync = (flags & SAMPLE_IS_NON_SYNC) === 0;
      this.samples.push({
        offset: at,
        size,
        dts: this.time,
        cts,
        duration,
        sync,
        descriptionIndex: this.description,
      });
      at += size;
      this.time += duration;
    }
    return at;
  }
}

/** The number of samples in each chunk of a flat track (stsc expanded over stco/co64). */
export function samplesPerChunk(track: Track): number[] {
  const stbl = track.stbl;
  const stsc = parseSampleToChunk(requireChild(stbl, 'stsc', 'stbl'));
  const chunkCount = parseChunkOffsets(
    findChild(stbl, 'stco') ?? requireChild(stbl, 'co64', 'stbl'),
  ).length;
  let left = sampleSizes(stbl).count;
  const out: number[] = [];
  const entries = stsc.length / 3;
  for (let e = 0; e < entries && left > 0; e++) {
    const next = e + 1 < entries ? stsc[3 * (e + 1)]! : chunkCount + 1;
    for (let c = stsc[3 * e]!; c < next && c <= chunkCount && left > 0; c++) {
      const n = Math.min(stsc[3 * e + 1]!, left);
      out.push(n);
      left -= n;
    }
  }
  return out;
}
