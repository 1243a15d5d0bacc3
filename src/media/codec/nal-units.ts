import { kwError } from '../../errors/index.js';

/** One NAL unit of a length-prefixed (ISO/IEC 14496-15) sample. */
export interface NalUnit {
  /** Offset of the length prefix in the sample. */
  readonly offset: number;
  /** Offset of the first NAL header byte (offset + length size). */
  readonly start: number;
  /** One past the NAL unit's last byte. */
  readonly end: number;
}

/** The NAL length sizes ISO/IEC 14496-15 allows (lengthSizeMinusOne 0, 1 or 3). */
export function checkNalLengthSize(size: number): number {
  if (size !== 1 && size !== 2 && size !== 4) {
    throw kwError('MEDIA_BITSTREAM', `NAL unit length size ${size} is not 1, 2 or 4`);
  }
  return size;
}

/**
 * Splits a sample into its NAL units (ISO/IEC 14496-15 §4.3.2: each NAL unit is preceded
 * by a big-endian length of `lengthSize` bytes). A length that runs past the sample end
 * is a MEDIA_BITSTREAM error, so no NAL unit range ever leaves the sample.
 */
export function splitNalUnits(sample: Uint8Array, lengthSize: number, where = 'sample'): NalUnit[] {
  checkNalLengthSize(lengthSize);
  const out: NalUnit[] = [];
  let at = 0;
  while (at < sample.length) {
    if (sample.length - at < lengthSize) {
      throw kwError(
        'MEDIA_BITSTREAM',
        `${where}: ${sample.length - at} trailing bytes cannot hold a NAL length`,
        {
          offset: at,
        },
      );
    }
    let size = 0;
    for (let i = 0; i < lengthSize; i++) size = size * 256 + (sample[at + i] ?? 0);
    const start = at + lengthSize;
    if (size > sample.length - start) {
      throw kwError(
        'MEDIA_BITSTREAM',
        `${where}: NAL unit at ${at} claims ${size} bytes, ${sample.length - start} remain`,
        {
          offset: at,
        },
      );
    }
    out.push({ offset: at, start, end: start + size });
    at = start + size;
  }
  return out;
}
