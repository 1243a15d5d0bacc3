import { kwError } from '../../errors/index.js';
import { boxReader, findChild, type Box } from '../box.js';
import type { ByteReader } from '../bytes.js';
import { PIFF_UUIDS, type TrackEncryption } from '../cenc-types.js';

/** A sample entry's 'sinf' (ISO/IEC 14496-12 §8.12): what the entry was and how it is protected. */
export interface ProtectionSchemeInfo {
  /** frma data_format: the sample entry type before encryption ('avc1', 'mp4a', ...). */
  readonly originalFormat: string;
  /** schm scheme_type as found ('cenc', 'cbcs', 'cens', 'cbc1', 'piff', or anything else). */
  readonly schemeType?: string;
  readonly schemeVersion?: number;
  /** The track's defaults, from 'tenc' or the PIFF track encryption box. */
  readonly trackEncryption?: TrackEncryption;
  /** Set when the defaults came from a PIFF track encryption box: its AlgorithmID (1 CTR, 2 CBC). */
  readonly piffAlgorithm?: number;
}

/** Parses a 'sinf' container (children already parsed). */
export function parseProtectionSchemeInfo(sinf: Box): ProtectionSchemeInfo {
  const frma = findChild(sinf, 'frma');
  if (!frma)
    throw kwError('MEDIA_MISSING_BOX', "'sinf' has no 'frma' box", {
      box: 'frma',
      offset: sinf.offset,
    });
  const originalFormat = boxReader(frma).fourcc();
  const schm = findChild(sinf, 'schm');
  const scheme = schm ? parseSchemeType(schm) : undefined;
  const schi = findChild(sinf, 'schi');
  const tenc = schi ? findChild(schi, 'tenc') : undefined;
  const piff = schi?.children?.find(
    (b) => b.type === 'uuid' && b.uuid === PIFF_UUIDS.trackEncryption,
  );
  let trackEncryption: TrackEncryption | undefined;
  let piffAlgorithm: number | undefined;
  if (tenc) trackEncryption = parseTrackEncryption(tenc);
  else if (piff) ({ trackEncryption, algorithm: piffAlgorithm } = parsePiffTrackEncryption(piff));
  return {
    originalFormat,
    ...(scheme && { schemeType: scheme.type, schemeVersion: scheme.version }),
    ...(trackEncryption && { trackEncryption }),
    ...(piffAlgorithm !== undefined && { piffAlgorithm }),
  };
}

/** Parses 'schm' (§8.12.5). */
export function parseSchemeType(box: Box): { type: string; version: number } {
  const r = boxReader(box);
  r.fullBoxHeader();
  return { type: r.fourcc(), version: r.u32() };
}

/** Reads a constant IV: a size byte then the IV (ISO/IEC 23001-7 §8.2.2). */
export function readConstantIv(r: ByteReader): Uint8Array {
  const size = r.u8();
  if (size !== 8 && size !== 16) {
    throw kwError('MEDIA_BAD_IV', `${r.context}: constant IV of ${size} bytes`, {
      box: r.context,
      size,
    });
  }
  return Uint8Array.from(r.bytes(size));
}

/** Checks a per-sample IV size (0, 8 or 16; §8.2.3). */
export function checkIvSize(size: number, where: string): number {
  if (size !== 0 && size !== 8 && size !== 16) {
    throw kwError('MEDIA_BAD_IV', `${where}: per-sample IV size ${size}`, { box: where, size });
  }
  return size;
}

/** Parses 'tenc' v0/v1 (ISO/IEC 23001-7 §8.2). */
export function parseTrackEncryption(box: Box): TrackEncryption {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  r.skip(1);
  const pattern = r.u8();
  const cryptByteBlock = version >= 1 ? pattern >> 4 : 0;
  const skipByteBlock = version >= 1 ? pattern & 0x0f : 0;
  const isProtected = r.u8();
  const perSampleIvSize = checkIvSize(r.u8(), 'tenc');
  const kid = Uint8Array.from(r.bytes(16));
  const base = { isProtected, perSampleIvSize, kid, cryptByteBlock, skipByteBlock };
  if (isProtected === 1 && perSampleIvSize === 0) return { ...base, constantIv: readConstantIv(r) };
  return base;
}

/** Parses PIFF's track encryption uuid box (PIFF 1.1 §5.3.2): AlgorithmID, IV size, KID. */
export function parsePiffTrackEncryption(box: Box): {
  trackEncryption: TrackEncryption;
  algorithm: number;
} {
  const r = boxReader(box);
  r.fullBoxHeader();
  const algorithm = r.u24();
  const perSampleIvSize = checkIvSize(r.u8(), 'piff tenc');
  const kid = Uint8Array.from(r.bytes(16));
  const trackEncryption = {
    isProtected: algorithm === 0 ? 0 : 1,
    perSampleIvSize,
    kid,
    cryptByteBlock: 0,
    skipByteBlock: 0,
  };
  return { trackEncryption, algorithm };
}
