import { kwError } from '../../errors/index.js';
import { boxReader, type Box } from '../box.js';
import type { ByteReader } from '../bytes.js';

/**
 * Sample table boxes (ISO/IEC 14496-12 §8.6-8.7). Every table is read into a typed array
 * after checking that the declared entry count fits in the box, so that a lying count
 * cannot make us allocate gigabytes.
 */

/** Reads `count` entries of `width` u32 fields, checking the count against the box first. */
function u32Table(r: ByteReader, count: number, width: number): Uint32Array {
  r.need(count * width * 4, `${count}-entry table`);
  const out = new Uint32Array(count * width);
  for (let i = 0; i < out.length; i++) out[i] = r.u32();
  return out;
}

function entryCount(r: ByteReader): number {
  r.fullBoxHeader();
  return r.u32();
}

/** 'stts': pairs (sample_count, sample_delta). */
export function parseTimeToSample(box: Box): Uint32Array {
  const r = boxReader(box);
  return u32Table(r, entryCount(r), 2);
}

/** 'ctts': pairs (sample_count, sample_offset); version 1 offsets are signed. */
export function parseCompositionOffsets(box: Box): { counts: Uint32Array; offsets: Int32Array } {
  const r = boxReader(box);
  const count = entryCount(r);
  const table = u32Table(r, count, 2);
  const counts = new Uint32Array(count);
  const offsets = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    counts[i] = table[2 * i]!;
    // Version 0 is unsigned by the letter of §8.6.1.3, but writers put negative values there
    // too; no real offset exceeds 2^31, so both versions read as signed.
    offsets[i] = table[2 * i + 1]! | 0;
  }
  return { counts, offsets };
}

/** Sample sizes from 'stsz' or 'stz2'. */
export interface SampleSizes {
  readonly count: number;
  /** Non-zero when every sample has this size (then `sizes` is undefined). */
  readonly uniformSize: number;
  readonly sizes?: Uint32Array;
}

/** 'stsz' (§8.7.3.2). */
export function parseSampleSizes(box: Box): SampleSizes {
  const r = boxReader(box);
  r.fullBoxHeader();
  const uniformSize = r.u32();
  const count = r.u32();
  if (uniformSize !== 0) return { count, uniformSize };
  return { count, uniformSize, sizes: u32Table(r, count, 1) };
}

/** 'stz2' compact sizes (§8.7.3.3): 4, 8 or 16 bits per sample. */
export function parseCompactSampleSizes(box: Box): SampleSizes {
  const r = boxReader(box);
  r.fullBoxHeader();
  r.skip(3);
  const fieldSize = r.u8();
  const count = r.u32();
  if (fieldSize !== 4 && fieldSize !== 8 && fieldSize !== 16) {
    throw kwError('MEDIA_MALFORMED_BOX', `stz2 field size ${fieldSize}`, {
      box: 'stz2',
      offset: box.offset,
    });
  }
  r.need(Math.ceil((count * fieldSize) / 8), `${count}-entry table`);
  const sizes = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    if (fieldSize === 16) sizes[i] = r.u16();
    else if (fieldSize === 8) sizes[i] = r.u8();
    else sizes[i] = i % 2 === 0 ? r.buf[r.index]! >> 4 : r.u8() & 0x0f;
  }
  return { count, uniformSize: 0, sizes };
}

/** 'stsc': triples (first_chunk, samples_per_chunk, sample_description_index). */
export function parseSampleToChunk(box: Box): Uint32Array {
  const r = boxReader(box);
  return u32Table(r, entryCount(r), 3);
}

/** 'stco' or 'co64' chunk offsets (absolute file offsets). */
export function parseChunkOffsets(box: Box): Float64Array {
  const r = boxReader(box);
  const count = entryCount(r);
  const wide = box.type === 'co64';
  r.need(count * (wide ? 8 : 4), `${count}-entry table`);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = wide ? r.u64() : r.u32();
  return out;
}

/** 'stss': 1-based numbers of sync samples. */
export function parseSyncSamples(box: Box): Uint32Array {
  const r = boxReader(box);
  return u32Table(r, entryCount(r), 1);
}
