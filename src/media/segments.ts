import { parseBoxes, type Box } from './box.js';

/** A fragmented MP4 split the way a DASH/HLS player receives it. */
export interface Segments {
  readonly file: Buffer;
  /** ftyp + moov. */
  readonly init: Buffer;
  /** Each moof + its mdat. */
  readonly fragments: Buffer[];
  /** The sidx, when there is one. */
  readonly sidx: Buffer | undefined;
  /** The top-level boxes. */
  readonly top: Box[];
}

/** Splits a fragmented MP4 (our packager's output) into its init segment and fragments. */
export function splitSegments(file: Buffer): Segments {
  const top = parseBoxes(file, 0, file.length, { containers: new Set() });
  const moov = top.find((b) => b.type === 'moov');
  if (!moov) throw new Error('not a fragmented MP4: no moov');
  const sidx = top.find((b) => b.type === 'sidx');
  const fragments: Buffer[] = [];
  top.forEach((b, i) => {
    const mdat = top[i + 1];
    if (b.type === 'moof' && mdat?.type === 'mdat')
      fragments.push(file.subarray(b.offset, mdat.offset + mdat.size));
  });
  return {
    file,
    init: file.subarray(0, moov.offset + moov.size),
    fragments,
    sidx: sidx && file.subarray(sidx.offset, sidx.offset + sidx.size),
    top,
  };
}
