import { kwError } from '../../errors/index.js';
import { serializeBoxes, makeBox, type Box } from '../box.js';
import { parseSegmentIndex, patchSegmentIndex } from '../boxes/index.js';
import { toUuid } from '../bytes.js';
import { nativeCipherFactory } from '../native-sample-cipher.js';
import { isProtectedTrack, originalFormat } from '../movie.js';
import type { SampleCipherFactory } from '../sample-crypto.js';
import { parseMovieFragment, samplesPerChunk, trackSamples } from '../samples.js';
import type { ByteSink, ByteSource } from '../stream/byte-source.js';
import { ChunkPool, DEFAULT_CHUNK, copyRegion } from '../stream/region-copier.js';
import { readWholeBox } from '../stream/top-level-boxes.js';
import type { AuxReader } from './aux-data.js';
import { decryptJobsInPlace } from './batches.js';
import { clearFragmentBox, clearMovieBox } from './clear-boxes.js';
import { fragmentOffsetPatches } from './fragment-offsets.js';
import { KeyRing, type ContentKey } from './key-ring.js';
import type { LayoutEntry } from './layout.js';
import { CipherGroups, type SampleJob } from './sample-jobs.js';
import { scanForDecrypt, type DecryptScan } from './scan.js';
import { protectedTrack, trackJobs, type ProtectedTrack } from './track-jobs.js';
import { declaredKids, trackCryptoDefaults } from './track-crypto.js';

/** Options of a decrypt job. */
export interface DecryptOptions {
  /** Content keys; a single key may come without its KID. */
  readonly keys: readonly ContentKey[];
  /** The AES implementation; defaults to the native addon (an error when it cannot load). */
  readonly cipherFactory?: SampleCipherFactory;
  /**
   * Refuse up front unless every KID the file declares has a key (default true: a file job
   * then fails before writing anything). False checks per sample instead, for a live
   * segment whose samples all use a rotated key, while its tenc still names the first one.
   */
  readonly requireAllKeys?: boolean;
  /** Run the codec checks that detect a wrong key (default true). */
  readonly verifyKey?: boolean;
  /** Bytes per read (default 2 MiB). */
  readonly chunkSize?: number;
  /** Progress in input bytes. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** One protected track of a finished job. */
export interface DecryptedTrack {
  readonly id: number;
  readonly handler: string;
  /** The restored sample entry type ('avc1', 'mp4a', ...). */
  readonly format: string;
  readonly schemes: readonly string[];
  /** KIDs named by tenc and the track's seig groups, as UUIDs. */
  readonly kids: readonly string[];
}

/** What a decrypt job did. */
export interface DecryptReport {
  readonly tracks: readonly DecryptedTrack[];
  readonly fragments: number;
  readonly encryptedSamples: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/**
 * Decrypts an ISO BMFF file given as one or more sources (an init segment then media
 * segments, or one whole file) into `sink`, writing a self-contained clear MP4. Fragmented
 * media is streamed one top-level box at a time; memory does not grow with the input.
 */
export async function decryptSources(
  sources: readonly ByteSource[],
  sink: ByteSink,
  opts: DecryptOptions,
): Promise<DecryptReport> {
  const keys = new KeyRing(opts.keys, opts.cipherFactory ?? nativeCipherFactory);
  try {
    const scan = await scanForDecrypt(sources);
    const tracks = new Map<number, ProtectedTrack>();
    for (const t of scan.movie.tracks.filter(isProtectedTrack))
      tracks.set(t.id, protectedTrack(t, trackCryptoDefaults(t)));
    if (tracks.size === 0)
      throw kwError('CONTENT_NOT_PROTECTED', 'no track of the input is encrypted');
    if (opts.requireAllKeys !== false)
      keys.requireAll([
        ...[...tracks.values()].flatMap((p) => declaredKids(p.defaults)),
        ...scan.fragmentKids,
      ]);
    const writer = new DecryptWriter(sources, sink, scan, tracks, new CipherGroups(keys), opts);
    const encryptedSamples = await writer.run();
    return {
      tracks: [...tracks.values()].map(describe),
      fragments: scan.fragmentCount,
      encryptedSamples,
      bytesIn: sources.reduce((n, s) => n + s.size, 0),
      bytesOut: scan.layout.outputSize,
    };
  } finally {
    keys.close();
  }
}

function describe(p: ProtectedTrack): DecryptedTrack {
  const schemes = new Set(p.defaults.entries.flatMap((e) => (e ? [e.scheme] : [])));
  return {
    id: p.track.id,
    handler: p.track.handler.handlerType,
    format: originalFormat(p.track),
    schemes: [...schemes],
    kids: [...new Set(declaredKids(p.defaults).map(toUuid))],
  };
}

/** The second pass: writes every top-level box in order, decrypting samples as their mdat streams by. */
class DecryptWriter {
  /** Jobs waiting for their mdat, by layout entry index. */
  private readonly waiting = new Map<number, SampleJob[]>();
  private readonly decodeTimes = new Map<number, number>();
  private readonly total: number;
  private done = 0;
  private jobCount = 0;
  private readonly pool: ChunkPool;

  constructor(
    private readonly sources: readonly ByteSource[],
    private readonly sink: ByteSink,
    private readonly scan: DecryptScan,
    private readonly tracks: ReadonlyMap<number, ProtectedTrack>,
    private readonly groups: CipherGroups,
    private readonly opts: DecryptOptions,
  ) {
    this.total = sources.reduce((n, s) => n + s.size, 0);
    const largest = Math.max(0, ...scan.layout.entries.map((e) => e.header.size));
    this.pool = new ChunkPool(
      Math.max(64 * 1024, Math.min(opts.chunkSize ?? DEFAULT_CHUNK, largest)),
    );
  }

  /** Writes the whole output; returns the number of samples decrypted. */
  async run(): Promise<number> {
    await this.queueMovieSamples();
    for (const e of this.scan.layout.entries) {
      await this.writeEntry(e);
      if (e.action !== 'media' && e.action !== 'copy') this.progress(e.header.size);
    }
    return this.jobCount;
  }

  private progress(n: number): void {
    this.done += n;
    this.opts.onProgress?.(this.done, this.total);
  }

  private auxReader(source: number): AuxReader {
    const src = this.sources[source]!;
    return async (offset, length) => {
      const buf = new Uint8Array(length);
      await src.read(buf, offset);
      return buf;
    };
  }

  private async writeEntry(e: LayoutEntry): Promise<void> {
    switch (e.action) {
      case 'movie':
        return this.writeBox(
          e,
          clearMovieBox(this.scan.movie, (o) =>
            this.scan.layout.mapOrThrow(e.source, o, 'chunk offset'),
          ),
        );
      case 'fragment':
        return this.writeFragment(e);
      case 'index':
        return this.writeIndex(e);
      case 'media':
      case 'copy':
        return this.copy(e);
      case 'drop':
        return undefined;
    }
  }

  private async writeBox(e: LayoutEntry, box: Box): Promise<void> {
    const bytes = serializeBoxes([box]);
    if (bytes.length !== e.outSize) {
      throw kwError(
        'MEDIA_TOO_LARGE',
        `rewritten '${e.header.type}' is ${bytes.length} bytes, planned ${e.outSize}`,
        { box: e.header.type },
      );
    }
    await this.sink.write(bytes, e.outOffset);
  }

  /** Flat-file samples (stbl) of protected tracks: known up front, wherever their mdat is. */
  private async queueMovieSamples(): Promise<void> {
    const source = this.scan.movieSource;
    for (const p of this.tracks.values()) {
      const samples = trackSamples(p.track, { dataLimit: this.sources[source]!.size });
      if (samples.length === 0) continue;
      const set = {
        source,
        container: p.track.stbl,
        samples,
        saioBase: 0,
        runLengths: samplesPerChunk(p.track),
        fragment: false,
      };
      this.queue(await trackJobs(p, set, this.auxReader(source), this.groups), -1);
    }
  }

  /** Files jobs under the mdat holding them, which must come after `after` in the layout. */
  private queue(jobs: readonly SampleJob[], after: number): void {
    for (const j of jobs) {
      const media = this.scan.layout.mediaHolding(j.source, j.offset, j.size);
      if (!media || media.index <= after) {
        throw kwError(
          'MEDIA_SAMPLE_OUT_OF_RANGE',
          `track ${j.trackId}: a ${j.size}-byte sample at ${j.offset} is not inside a following mdat`,
          {
            trackId: j.trackId,
            offset: j.offset,
            size: j.size,
          },
        );
      }
      const list = this.waiting.get(media.index) ?? [];
      list.push(j);
      this.waiting.set(media.index, list);
    }
    this.jobCount += jobs.length;
  }

  private async writeFragment(e: LayoutEntry): Promise<void> {
    const moof = await readWholeBox(this.sources[e.source]!, e.header);
    const fragment = parseMovieFragment(moof, this.scan.movie, {
      decodeTimes: this.decodeTimes,
      dataLimit: this.sources[e.source]!.size,
    });
    for (const tf of fragment.trafs) {
      this.decodeTimes.set(tf.trackId, tf.endTime);
      const p = this.tracks.get(tf.trackId);
      if (!p || tf.samples.length === 0) continue;
      const set = {
        source: e.source,
        container: tf.box,
        samples: tf.samples,
        saioBase: tf.header.baseDataOffset ?? moof.offset,
        runLengths: tf.runs.map((r) => r.run.sampleCount),
        fragment: true,
      };
      this.queue(await trackJobs(p, set, this.auxReader(e.source), this.groups), e.index);
    }
    await this.writeBox(
      e,
      clearFragmentBox(moof, fragmentOffsetPatches(fragment, this.scan.layout, e)),
    );
  }

  /** sidx with first_offset and referenced sizes mapped to the output; a 'free' box when they cannot be. */
  private async writeIndex(e: LayoutEntry): Promise<void> {
    const box = await readWholeBox(this.sources[e.source]!, e.header);
    const sidx = parseSegmentIndex(box);
    const layout = this.scan.layout;
    const inEnd = e.header.offset + e.header.size;
    let at = inEnd + sidx.firstOffset;
    const outFirst = layout.map(e.source, at);
    const sizes: number[] = [];
    let ok = outFirst !== undefined;
    for (const ref of sidx.references) {
      const start = layout.map(e.source, at);
      const end = layout.map(e.source, at + ref.referencedSize);
      if (start === undefined || end === undefined) ok = false;
      else sizes.push(end - start);
      at += ref.referencedSize;
    }
    if (!ok) return this.writeBox(e, makeBox('free', box.payload));
    await this.writeBox(
      e,
      makeBox('sidx', patchSegmentIndex(box, sidx, outFirst! - (e.outOffset + e.outSize), sizes)),
    );
  }

  private async copy(e: LayoutEntry): Promise<void> {
    const jobs = (this.waiting.get(e.index) ?? []).sort((a, b) => a.offset - b.offset);
    this.waiting.delete(e.index);
    for (let i = 1; i < jobs.length; i++) {
      const prev = jobs[i - 1]!;
      if (jobs[i]!.offset < prev.offset + prev.size) {
        throw kwError(
          'MEDIA_SAMPLE_OUT_OF_RANGE',
          `encrypted samples overlap at ${jobs[i]!.offset}`,
          { offset: jobs[i]!.offset },
        );
      }
    }
    const verify = this.opts.verifyKey ?? true;
    await copyRegion({
      src: this.sources[e.source]!,
      sink: this.sink,
      start: e.header.offset,
      end: e.header.offset + e.header.size,
      outStart: e.outOffset,
      spans: jobs,
      transform: (buf, c) => decryptJobsInPlace(buf, c.start, jobs.slice(c.first, c.last), verify),
      pool: this.pool,
      onBytes: (n) => this.progress(n),
    });
  }
}
