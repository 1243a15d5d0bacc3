import { kwError } from '../../errors/index.js';
import { boxReader, type Box } from '../box.js';

/** 'saiz' (ISO/IEC 14496-12 §8.7.8): sizes of each sample's auxiliary information. */
export interface AuxInfoSizes {
  readonly auxInfoType?: string;
  readonly auxInfoTypeParameter?: number;
  /** Non-zero when every sample's info has this size. */
  readonly defaultSize: number;
  readonly sampleCount: number;
  /** Per-sample sizes when defaultSize is 0. */
  readonly sizes?: Uint8Array;
}

/** 'saio' (§8.7.9): where the auxiliary information lies. */
export interface AuxInfoOffsets {
  readonly auxInfoType?: string;
  readonly auxInfoTypeParameter?: number;
  readonly offsets: readonly number[];
}

/** Parses 'saiz'. */
export function parseAuxInfoSizes(box: Box): AuxInfoSizes {
  const r = boxReader(box);
  const { flags } = r.fullBoxHeader();
  const type = (flags & 1) !== 0 ? { auxInfoType: r.fourcc(), auxInfoTypeParameter: r.u32() } : {};
  const defaultSize = r.u8();
  const sampleCount = r.u32();
  if (defaultSize !== 0) return { ...type, defaultSize, sampleCount };
  return { ...type, defaultSize, sampleCount, sizes: Uint8Array.from(r.bytes(sampleCount)) };
}

/** Parses 'saio'. */
export function parseAuxInfoOffsets(box: Box): AuxInfoOffsets {
  const r = boxReader(box);
  const { version, flags } = r.fullBoxHeader();
  const type = (flags & 1) !== 0 ? { auxInfoType: r.fourcc(), auxInfoTypeParameter: r.u32() } : {};
  const count = r.u32();
  r.need(count * (version === 0 ? 4 : 8), `${count}-entry table`);
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) offsets.push(version === 0 ? r.u32() : r.u64());
  return { ...type, offsets };
}

/** The size of sample `i`'s auxiliary information. */
export function auxInfoSize(saiz: AuxInfoSizes, i: number): number {
  if (saiz.defaultSize !== 0) return saiz.defaultSize;
  const s = saiz.sizes?.[i];
  if (s === undefined)
    throw kwError('MEDIA_MALFORMED_BOX', `saiz has no size for sample ${i}`, { box: 'saiz' });
  return s;
}

/** True when a saiz/saio pair describes CENC data: type 'cenc' (or the other schemes) or untyped. */
export function isCencAuxInfo(info: { auxInfoType?: string }): boolean {
  return (
    info.auxInfoType === undefined ||
    ['cenc', 'cbcs', 'cens', 'cbc1', 'piff'].includes(info.auxInfoType)
  );
}
