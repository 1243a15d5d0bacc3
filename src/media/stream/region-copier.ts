import { kwError } from '../../errors/index.js';
import type { ByteSink, ByteSource } from './byte-source.js';

/** Default bytes per read: large reads, few calls, a flat memory profile. */
export const DEFAULT_CHUNK = 2 * 1024 * 1024;
/** A single sample larger than this is refused rather than buffered. */
export const MAX_SAMPLE_BYTES = 256 * 1024 * 1024;

/** Anything with a byte range in the source (a sample job). */
export interface Span {
  readonly offset: number;
  readonly size: number;
}

/** A piece of a region: input bytes `[start, end)` and the spans `[first, last)` inside it. */
export interface Chunk {
  readonly start: number;
  readonly end: number;
  readonly first: number;
  readonly last: number;
}

/**
 * Cuts `[start, end)` into chunks of about `chunkSize` bytes that never split a span.
 * `spans` must be sorted, non-overlapping and inside the region.
 */
export function planChunks(
  start: number,
  end: number,
  spans: readonly Span[],
  chunkSize: number,
): Chunk[] {
  const out: Chunk[] = [];
  let at = start;
  let i = 0;
  while (at < end) {
    let stop = Math.min(end, at + chunkSize);
    const first = i;
    while (i < spans.length && spans[i]!.offset + spans[i]!.size <= stop) i++;
    const straddling = spans[i];
    if (straddling && straddling.offset < stop) {
      if (straddling.offset > at) stop = straddling.offset;
      else {
        if (straddling.size > MAX_SAMPLE_BYTES)
          throw kwError('MEDIA_TOO_LARGE', `a ${straddling.size}-byte sample`, {
            offset: straddling.offset,
          });
        stop = straddling.offset + straddling.size;
        i++;
      }
    }
    out.push({ start: at, end: stop, first, last: i });
    at = stop;
  }
  return out;
}

/**
 * Three reusable chunk buffers: chunk i reads into buffer i mod 3 while i-1 is written and
 * i+1 read ahead. One pool serves every region of a job, so memory stays flat across mdats.
 */
export class ChunkPool {
  private readonly buffers: Buffer[];

  constructor(readonly chunkSize: number = DEFAULT_CHUNK) {
    this.buffers = [0, 1, 2].map(() => Buffer.allocUnsafe(chunkSize));
  }

  /** The buffer for the `i`-th chunk of a region; a one-off buffer for an oversized chunk. */
  bufferFor(i: number, length: number): Uint8Array {
    const b = this.buffers[i % 3]!;
    return length <= b.length ? b.subarray(0, length) : Buffer.allocUnsafe(length);
  }
}

/** Transforms a chunk in place before it is written (decrypts its spans). */
export type ChunkTransform = (buf: Uint8Array, chunk: Chunk) => Promise<void>;

/** Where a region goes, and what to do with it. */
export interface RegionCopy {
  readonly src: ByteSource;
  readonly sink: ByteSink;
  readonly start: number;
  readonly end: number;
  readonly outStart: number;
  readonly spans: readonly Span[];
  readonly transform?: ChunkTransform;
  /** Buffers to reuse; a region-sized pool is made when absent. */
  readonly pool?: ChunkPool;
  /** Called with the input bytes of each chunk once written. */
  readonly onBytes?: (n: number) => void;
}

/**
 * Copies a region of the input to the output through `transform`, chunk by chunk, with the
 * read of chunk i+1 and the write of chunk i-1 in flight while chunk i is transformed. Three
 * reused buffers bound memory whatever the region's size.
 */
export async function copyRegion(job: RegionCopy): Promise<void> {
  const pool = job.pool ?? new ChunkPool(Math.min(DEFAULT_CHUNK, job.end - job.start));
  const chunks = planChunks(job.start, job.end, job.spans, pool.chunkSize);
  if (chunks.length === 0) return;
  const read = async (i: number): Promise<Uint8Array> => {
    const c = chunks[i]!;
    const buf = pool.bufferFor(i, c.end - c.start);
    await job.src.read(buf, c.start);
    return buf;
  };
  let next: Promise<Uint8Array> | undefined = observed(read(0));
  let writing: Promise<void> = Promise.resolve();
  try {
    for (let i = 0; i < chunks.length; i++) {
      const buf: Uint8Array = await next!;
      next = i + 1 < chunks.length ? observed(read(i + 1)) : undefined;
      const c = chunks[i]!;
      if (job.transform && c.last > c.first) await job.transform(buf, c);
      await writing;
      writing = observed(
        job.sink
          .write(buf, job.outStart + (c.start - job.start))
          .then(() => job.onBytes?.(c.end - c.start)),
      );
    }
    await writing;
  } finally {
    // Settle what is still in flight so no read or write outlives a failure.
    await Promise.allSettled([next, writing]);
  }
}

/**
 * Marks a promise as handled while it is in flight (it is awaited later), so that a failed
 * read or write during the transform of another chunk is not an unhandled rejection.
 */
function observed<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}
