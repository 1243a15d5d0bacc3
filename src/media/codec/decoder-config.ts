import { kwError } from '../../errors/index.js';
import { ByteReader } from '../bytes.js';
import { checkNalLengthSize } from './nal-units.js';

/** What the packager needs from an avcC or hvcC record. */
export interface NalDecoderConfig {
  /** NAL length prefix size in samples: lengthSizeMinusOne + 1. */
  readonly nalLengthSize: number;
  /** Parameter set NAL units (SPS, PPS, VPS), escaped, with their NAL headers. */
  readonly parameterSets: readonly Uint8Array[];
}

/**
 * Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), the payload of
 * 'avcC'. The high-profile extension after the PPS list carries nothing we need.
 */
export function parseAvcConfig(payload: Uint8Array): NalDecoderConfig {
  const r = new ByteReader(payload, 0, payload.length, 'avcC');
  const version = r.u8();
  if (version !== 1)
    throw kwError('MEDIA_BITSTREAM', `avcC configurationVersion ${version} is not 1`);
  r.skip(3); // profile, compatibility, level
  const nalLengthSize = checkNalLengthSize((r.u8() & 0x03) + 1);
  const parameterSets: Uint8Array[] = [];
  const spsCount = r.u8() & 0x1f;
  for (let i = 0; i < spsCount; i++) parameterSets.push(r.bytes(r.u16()));
  const ppsCount = r.u8();
  for (let i = 0; i < ppsCount; i++) parameterSets.push(r.bytes(r.u16()));
  return { nalLengthSize, parameterSets };
}

/** Bytes of HEVCDecoderConfigurationRecord before numOfArrays (ISO/IEC 14496-15 §8.3.3.1). */
const HVCC_FIXED_BYTES = 22;

/** Parses an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1), the payload of 'hvcC'. */
export function parseHevcConfig(payload: Uint8Array): NalDecoderConfig {
  const r = new ByteReader(payload, 0, payload.length, 'hvcC');
  const version = r.u8();
  if (version !== 1)
    throw kwError('MEDIA_BITSTREAM', `hvcC configurationVersion ${version} is not 1`);
  r.skip(HVCC_FIXED_BYTES - 2);
  const nalLengthSize = checkNalLengthSize((r.u8() & 0x03) + 1);
  const parameterSets: Uint8Array[] = [];
  const arrays = r.u8();
  for (let a = 0; a < arrays; a++) {
    r.u8(); // array_completeness, reserved, NAL_unit_type: the NAL headers say it again
    const count = r.u16();
    for (let i = 0; i < count; i++) parameterSets.push(r.bytes(r.u16()));
  }
  return { nalLengthSize, parameterSets };
}
