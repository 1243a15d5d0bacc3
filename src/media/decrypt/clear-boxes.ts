import { kwError } from '../../errors/index.js';
import { makeBox, type Box } from '../box.js';
import {
  isCencAuxInfo,
  isProtectionSystemBox,
  isSampleEncryptionBox,
  parseAuxInfoOffsets,
  parseAuxInfoSizes,
  parseChunkOffsets,
  sampleDescriptionsBox,
  sampleEntryBox,
} from '../boxes/index.js';
import { ByteWriter, fourccToString } from '../bytes.js';
import type { Movie, Track } from '../movie.js';

/** Replaces a box: a new box, null to drop it, undefined to keep it (descending into containers). */
export type BoxVisitor = (box: Box, parent: Box | undefined) => Box | null | undefined;

/** Rebuilds a box tree through `visit`; unchanged subtrees are reused as they are. */
export function rewriteTree(box: Box, visit: BoxVisitor, parent?: Box): Box | null {
  const replaced = visit(box, parent);
  if (replaced !== undefined) return replaced;
  if (!box.children) return box;
  const children: Box[] = [];
  let changed = false;
  for (const c of box.children) {
    const next = rewriteTree(c, visit, box);
    if (next !== c) changed = true;
    if (next) children.push(next);
  }
  return changed ? makeBox(box.type, children, box.uuid) : box;
}

/** The grouping_type of an sbgp/sgpd (the field after version/flags). */
function groupingType(box: Box): string {
  return box.payload.length >= 8 ? fourccToString(box.payload.subarray(4, 8)) : '';
}

/**
 * True for the boxes that describe encryption inside stbl or traf and must go from a clear
 * file: senc, PIFF's sample encryption, CENC saiz/saio, and seig sample groups.
 */
export function isEncryptionDetailBox(box: Box): boolean {
  if (isSampleEncryptionBox(box)) return true;
  if (box.type === 'saiz') return isCencAuxInfo(parseAuxInfoSizes(box));
  if (box.type === 'saio') return isCencAuxInfo(parseAuxInfoOffsets(box));
  if (box.type === 'sbgp' || box.type === 'sgpd') return groupingType(box) === 'seig';
  return false;
}

/** The track's stsd with encv/enca turned back into their original format and sinf removed. */
export function clearSampleDescriptions(track: Track): Box {
  const d = track.descriptions;
  const entries = d.entries.map((e, i) => {
    const p = track.protection[i];
    if (!p) return e.box;
    return sampleEntryBox(
      p.originalFormat,
      e,
      e.children.filter((c) => c.type !== 'sinf'),
    );
  });
  return sampleDescriptionsBox(d.version, d.flags, entries);
}

/** stco/co64 with every chunk offset mapped to the output; co64 when an offset needs it. */
export function mappedChunkOffsets(box: Box, map: (offset: number) => number): Box {
  const offsets = parseChunkOffsets(box).map(map);
  const wide = box.type === 'co64' || offsets.some((o) => o > 0xffffffff);
  const w = new ByteWriter(8 + offsets.length * (wide ? 8 : 4));
  w.u32(0).u32(offsets.length);
  for (const o of offsets) {
    if (wide) w.u64(o);
    else w.u32(o);
  }
  return makeBox(wide ? 'co64' : 'stco', w.toBuffer());
}

/**
 * The clear 'moov': original sample entries, no pssh, no encryption detail boxes, and chunk
 * offsets passed through `mapChunk` (omit it to keep them, e.g. to measure the size).
 */
export function clearMovieBox(movie: Movie, mapChunk?: (offset: number) => number): Box {
  const stsdOf = new Map<Box, Track>();
  for (const t of movie.tracks) {
    const stsd = t.stbl.children?.find((c) => c.type === 'stsd');
    if (stsd && t.protection.some((p) => p)) stsdOf.set(stsd, t);
  }
  const out = rewriteTree(movie.box, (box, parent) => {
    if (parent?.type === 'moov' && isProtectionSystemBox(box)) return null;
    if (parent?.type !== 'stbl') return undefined;
    const track = stsdOf.get(box);
    if (track) return clearSampleDescriptions(track);
    if (isEncryptionDetailBox(box)) return null;
    if (mapChunk && (box.type === 'stco' || box.type === 'co64'))
      return mappedChunkOffsets(box, mapChunk);
    return undefined;
  });
  if (!out) throw kwError('MEDIA_MALFORMED_BOX', 'moov vanished while rewriting');
  return out;
}

/**
 * The clear 'moof': no pssh, no encryption detail boxes in its trafs, and the payloads in
 * `patched` (new tfhd/trun payloads keyed by the original box) swapped in.
 */
export function clearFragmentBox(
  moof: Box,
  patched: ReadonlyMap<Box, Uint8Array> = new Map(),
): Box {
  const out = rewriteTree(moof, (box, parent) => {
    if (parent?.type === 'moof' && isProtectionSystemBox(box)) return null;
    if (parent?.type !== 'traf') return undefined;
    if (isEncryptionDetailBox(box)) return null;
    const payload = patched.get(box);
    return payload ? makeBox(box.type, payload) : undefined;
  });
  if (!out) throw kwError('MEDIA_MALFORMED_BOX', 'moof vanished while rewriting');
  return out;
}
