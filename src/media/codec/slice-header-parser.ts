import { kwError, isKeywardenError } from '../../errors/index.js';
import { parseAvcConfig, parseHevcConfig, type NalDecoderConfig } from './decoder-config.js';
import { H264ParameterSets } from './h264-parameter-sets.js';
import { H264_SLICE_NAL_TYPES, h264SliceHeaderBits } from './h264-slice-header.js';
import { H265ParameterSets } from './h265-parameter-sets.js';
import { h265SliceHeaderBits, isH265SliceNalType } from './h265-slice-header.js';

/** The NAL-structured video codecs the packager understands. */
export type NalCodec = 'h264' | 'h265';

/**
 * Reads the NAL units of one video track in decode order and says how much of each must
 * stay clear. It remembers parameter sets from the decoder configuration and from the
 * samples themselves (avc3/hev1 carry them in-band), as slices may refer to either.
 */
export interface SliceHeaderParser {
  readonly codec: NalCodec;
  /** NAL length prefix size in samples. */
  readonly nalLengthSize: number;
  /**
   * For a coded-slice NAL unit: the bytes at its start that must stay clear, i.e. the NAL
   * unit header plus the slice (segment) header. For anything else: undefined, meaning the
   * whole NAL unit stays clear (ISO/IEC 23001-7 §10.2-10.4, ISO/IEC 14496-15 §5.1/§8.1).
   */
  clearHeaderBytes(nal: Uint8Array): number | undefined;
}

/** Wraps a parse error of a parameter set or slice header as MEDIA_BITSTREAM with context. */
function inContext<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (
      isKeywardenError(err) &&
      (err.code === 'MEDIA_BITSTREAM' || err.code === 'MEDIA_UNSUPPORTED_CODEC')
    )
      throw err;
    throw kwError('MEDIA_BITSTREAM', `${what}: ${(err as Error).message}`, {}, err);
  }
}

class H264SliceHeaderParser implements SliceHeaderParser {
  readonly codec = 'h264' as const;
  private readonly sets = new H264ParameterSets();

  constructor(config: NalDecoderConfig) {
    this.nalLengthSize = config.nalLengthSize;
    for (const ps of config.parameterSets) inContext('avcC parameter set', () => this.sets.add(ps));
  }

  readonly nalLengthSize: number;

  clearHeaderBytes(nal: Uint8Array): number | undefined {
    if (nal.length === 0) return undefined;
    const type = (nal[0] ?? 0) & 0x1f;
    if (type === 7 || type === 8) {
      inContext('H.264 in-band parameter set', () => this.sets.add(nal));
      return undefined;
    }
    if (!H264_SLICE_NAL_TYPES.has(type)) return undefined;
    const bits = inContext('H.264 slice header', () => h264SliceHeaderBits(nal, this.sets));
    return Math.min(nal.length, 1 + Math.ceil(bits / 8));
  }
}

class H265SliceHeaderParser implements SliceHeaderParser {
  readonly codec = 'h265' as const;
  private readonly sets = new H265ParameterSets();

  constructor(config: NalDecoderConfig) {
    this.nalLengthSize = config.nalLengthSize;
    for (const ps of config.parameterSets) inContext('hvcC parameter set', () => this.sets.add(ps));
  }

  readonly nalLengthSize: number;

  clearHeaderBytes(nal: Uint8Array): number | undefined {
    if (nal.length < 2) return undefined;
    const type = ((nal[0] ?? 0) >> 1) & 0x3f;
    if (type === 33 || type === 34) {
      inContext('H.265 in-band parameter set', () => this.sets.add(nal));
      return undefined;
    }
    if (!isH265SliceNalType(type)) return undefined;
    const bits = inContext('H.265 slice segment header', () => h265SliceHeaderBits(nal, this.sets));
    return Math.min(nal.length, 2 + Math.ceil(bits / 8));
  }
}

/** A parser for an 'avcC' (H.264) or 'hvcC' (H.265) decoder configuration record payload. */
export function createSliceHeaderParser(
  codec: NalCodec,
  configPayload: Uint8Array,
): SliceHeaderParser {
  return codec === 'h264'
    ? new H264SliceHeaderParser(inContext('avcC', () => parseAvcConfig(configPayload)))
    : new H265SliceHeaderParser(inContext('hvcC', () => parseHevcConfig(configPayload)));
}
