import { kwError } from '../../errors/index.js';
import { findChild, type Box } from '../box.js';
import { TFHD, withBaseDataOffset, withRunDataOffset } from '../boxes/index.js';
import type { MovieFragment, TrackFragment } from '../samples.js';
import type { LayoutEntry, OutputLayout } from './layout.js';

/**
 * New tfhd/trun payloads for a clear moof (ISO/IEC 14496-12 §8.8.7-8.8.8): the moof shrank,
 * so every data_offset relative to it moves, and an explicit base_data_offset follows its
 * target. Keyed by the original box, for clearFragmentBox.
 */
export function fragmentOffsetPatches(
  fragment: MovieFragment,
  layout: OutputLayout,
  moof: LayoutEntry,
): Map<Box, Uint8Array> {
  const patches = new Map<Box, Uint8Array>();
  let previousEnd: number | undefined;
  fragment.trafs.forEach((tf, k) => {
    const outBase = outputBase(tf, k === 0, layout, moof, previousEnd, patches);
    previousEnd = patchRuns(tf, outBase, layout, moof.source, patches) ?? previousEnd;
  });
  return patches;
}

function outputBase(
  tf: TrackFragment,
  first: boolean,
  layout: OutputLayout,
  moof: LayoutEntry,
  previousEnd: number | undefined,
  patches: Map<Box, Uint8Array>,
): number {
  const h = tf.header;
  if (h.baseDataOffset !== undefined) {
    const out = layout.mapOrThrow(
      moof.source,
      h.baseDataOffset,
      `track ${tf.trackId} base_data_offset`,
    );
    const tfhd = findChild(tf.box, 'tfhd');
    if (tfhd && out !== h.baseDataOffset) patches.set(tfhd, withBaseDataOffset(tfhd, out));
    return out;
  }
  if ((h.flags & TFHD.defaultBaseIsMoof) !== 0 || first || previousEnd === undefined)
    return moof.outOffset;
  return previousEnd;
}

/** Patches the truns of a traf; returns the output offset after its data (the next traf's implicit base). */
function patchRuns(
  tf: TrackFragment,
  outBase: number,
  layout: OutputLayout,
  source: number,
  patches: Map<Box, Uint8Array>,
): number | undefined {
  let cursor = outBase;
  let end: number | undefined;
  for (const r of tf.runs) {
    if (r.run.sampleCount === 0) continue;
    const outStart = layout.mapOrThrow(source, r.dataStart, `track ${tf.trackId} trun data`);
    if (r.run.dataOffset !== undefined) {
      const offset = outStart - outBase;
      if (offset < -0x80000000 || offset > 0x7fffffff)
        throw kwError('MEDIA_TOO_LARGE', `trun data_offset ${offset}`, { box: 'trun' });
      if (offset !== r.run.dataOffset) patches.set(r.box, withRunDataOffset(r.box, offset));
    } else if (outStart !== cursor) {
      throw kwError(
        'MEDIA_UNSUPPORTED',
        `track ${tf.trackId}: a trun without data_offset cannot follow the rewritten layout`,
        { box: 'trun' },
      );
    }
    const last = tf.samples[r.firstSample + r.run.sampleCount - 1]!;
    cursor = layout.mapOrThrow(source, last.offset + last.size, `track ${tf.trackId} trun end`);
    end = cursor;
  }
  return end;
}
