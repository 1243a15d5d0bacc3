import { boxReader, type Box } from '../box.js';

/** 'ftyp' / 'styp' (ISO/IEC 14496-12 §4.3, §8.16.2). */
export interface FileType {
  readonly majorBrand: string;
  readonly minorVersion: number;
  readonly compatibleBrands: readonly string[];
}

/** Parses an 'ftyp' or 'styp' box. */
export function parseFileType(box: Box): FileType {
  const r = boxReader(box);
  const majorBrand = r.fourcc();
  const minorVersion = r.u32();
  const compatibleBrands: string[] = [];
  while (r.remaining >= 4) compatibleBrands.push(r.fourcc());
  return { majorBrand, minorVersion, compatibleBrands };
}
