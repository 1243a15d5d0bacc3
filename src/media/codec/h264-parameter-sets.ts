import { kwError } from '../../errors/index.js';
import { NalBitReader, ceilLog2 } from './bit-reader.js';

/** The fields of an H.264 SPS (ITU-T H.264 §7.3.2.1.1) that slice headers depend on. */
export interface H264Sps {
  readonly id: number;
  readonly separateColourPlane: boolean;
  /** ChromaArrayType (§7.4.2.1.1): 0 when the colour planes are coded separately. */
  readonly chromaArrayType: number;
  readonly log2MaxFrameNum: number;
  readonly picOrderCntType: number;
  readonly log2MaxPicOrderCntLsb: number;
  readonly deltaPicOrderAlwaysZero: boolean;
  readonly frameMbsOnly: boolean;
  /** PicSizeInMapUnits = PicWidthInMbs * PicHeightInMapUnits (§7.4.2.1.1). */
  readonly picSizeInMapUnits: number;
}

/** The fields of an H.264 PPS (§7.3.2.2) that slice headers depend on. */
export interface H264Pps {
  readonly id: number;
  readonly spsId: number;
  readonly entropyCodingMode: boolean;
  readonly bottomFieldPicOrderInFramePresent: boolean;
  readonly numSliceGroupsMinus1: number;
  readonly sliceGroupMapType: number;
  readonly sliceGroupChangeRate: number;
  readonly numRefIdxL0DefaultActiveMinus1: number;
  readonly numRefIdxL1DefaultActiveMinus1: number;
  readonly weightedPred: boolean;
  readonly weightedBipredIdc: number;
  readonly deblockingFilterControlPresent: boolean;
  readonly redundantPicCntPresent: boolean;
}

/** profile_idc values whose SPS carries chroma_format_idc and friends (§7.3.2.1.1). */
const HIGH_PROFILES: ReadonlySet<number> = new Set([
  100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135,
]);

/** Parses an SPS NAL unit (escaped, starting at its 1-byte NAL header). */
export function parseH264Sps(nal: Uint8Array): H264Sps {
  const r = new NalBitReader(nal, 1, nal.length, 'H.264 SPS');
  const profileIdc = r.u(8);
  r.skip(16); // constraint flags, level_idc
  const id = r.ueMax(31, 'seq_parameter_set_id');
  let chromaFormatIdc = 1;
  let separateColourPlane = false;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = r.ueMax(3, 'chroma_format_idc');
    if (chromaFormatIdc === 3) separateColourPlane = r.flag();
    r.ue(); // bit_depth_luma_minus8
    r.ue(); // bit_depth_chroma_minus8
    r.skip(1); // qpprime_y_zero_transform_bypass_flag
    if (r.flag()) skipScalingMatrix(r, chromaFormatIdc !== 3 ? 8 : 12);
  }
  const log2MaxFrameNum = r.ueMax(12, 'log2_max_frame_num_minus4') + 4;
  const poc = readPicOrderCount(r);
  r.ue(); // max_num_ref_frames
  r.skip(1); // gaps_in_frame_num_value_allowed_flag
  const widthInMbs = r.ue() + 1;
  const heightInMapUnits = r.ue() + 1;
  const frameMbsOnly = r.flag();
  return {
    id,
    separateColourPlane,
    chromaArrayType: separateColourPlane ? 0 : chromaFormatIdc,
    log2MaxFrameNum,
    ...poc,
    frameMbsOnly,
    picSizeInMapUnits: widthInMbs * heightInMapUnits,
  };
}

function readPicOrderCount(
  r: NalBitReader,
): Pick<H264Sps, 'picOrderCntType' | 'log2MaxPicOrderCntLsb' | 'deltaPicOrderAlwaysZero'> {
  const picOrderCntType = r.ueMax(2, 'pic_order_cnt_type');
  let log2MaxPicOrderCntLsb = 0;
  let deltaPicOrderAlwaysZero = false;
  if (picOrderCntType === 0) {
    log2MaxPicOrderCntLsb = r.ueMax(12, 'log2_max_pic_order_cnt_lsb_minus4') + 4;
  } else if (picOrderCntType === 1) {
    deltaPicOrderAlwaysZero = r.flag();
    r.se(); // offset_for_non_ref_pic
    r.se(); // offset_for_top_to_bottom_field
    const cycle = r.ueMax(255, 'num_ref_frames_in_pic_order_cnt_cycle');
    for (let i = 0; i < cycle; i++) r.se();
  }
  return { picOrderCntType, log2MaxPicOrderCntLsb, deltaPicOrderAlwaysZero };
}

/** scaling_list() for each present list (§7.3.2.1.1.1): only its length matters here. */
function skipScalingMatrix(r: NalBitReader, lists: number): void {
  for (let i = 0; i < lists; i++) {
    if (!r.flag()) continue;
    const size = i < 6 ? 16 : 64;
    let last = 8;
    let next = 8;
    for (let j = 0; j < size; j++) {
      if (next !== 0) next = (last + r.se() + 256) % 256;
      last = next === 0 ? last : next;
    }
  }
}

/** Parses a PPS NAL unit (escaped, starting at its NAL header). Stops after the fields slices need. */
export function parseH264Pps(nal: Uint8Array): H264Pps {
  const r = new NalBitReader(nal, 1, nal.length, 'H.264 PPS');
  const id = r.ueMax(255, 'pic_parameter_set_id');
  const spsId = r.ueMax(31, 'seq_parameter_set_id');
  const entropyCodingMode = r.flag();
  const bottomFieldPicOrderInFramePresent = r.flag();
  const groups = readSliceGroups(r);
  const numRefIdxL0DefaultActiveMinus1 = r.ueMax(31, 'num_ref_idx_l0_default_active_minus1');
  const numRefIdxL1DefaultActiveMinus1 = r.ueMax(31, 'num_ref_idx_l1_default_active_minus1');
  const weightedPred = r.flag();
  const weightedBipredIdc = r.u(2);
  r.se(); // pic_init_qp_minus26
  r.se(); // pic_init_qs_minus26
  r.se(); // chroma_qp_index_offset
  const deblockingFilterControlPresent = r.flag();
  r.skip(1); // constrained_intra_pred_flag
  const redundantPicCntPresent = r.flag();
  return {
    id,
    spsId,
    entropyCodingMode,
    bottomFieldPicOrderInFramePresent,
    ...groups,
    numRefIdxL0DefaultActiveMinus1,
    numRefIdxL1DefaultActiveMinus1,
    weightedPred,
    weightedBipredIdc,
    deblockingFilterControlPresent,
    redundantPicCntPresent,
  };
}

/** Slice group syntax of the PPS (FMO, Baseline/Extended profiles). */
function readSliceGroups(
  r: NalBitReader,
): Pick<H264Pps, 'numSliceGroupsMinus1' | 'sliceGroupMapType' | 'sliceGroupChangeRate'> {
  const numSliceGroupsMinus1 = r.ueMax(7, 'num_slice_groups_minus1');
  let sliceGroupMapType = 0;
  let sliceGroupChangeRate = 1;
  if (numSliceGroupsMinus1 > 0) {
    sliceGroupMapType = r.ueMax(6, 'slice_group_map_type');
    if (sliceGroupMapType === 0) {
      for (let i = 0; i <= numSliceGroupsMinus1; i++) r.ue();
    } else if (sliceGroupMapType === 2) {
      for (let i = 0; i < numSliceGroupsMinus1 * 2; i++) r.ue(); // top_left, bottom_right
    } else if (sliceGroupMapType >= 3 && sliceGroupMapType <= 5) {
      r.skip(1);
      sliceGroupChangeRate = r.ue() + 1;
    } else if (sliceGroupMapType === 6) {
      const units = r.ue() + 1;
      const bits = ceilLog2(numSliceGroupsMinus1 + 1);
      for (let i = 0; i < units; i++) r.skip(bits);
    }
  }
  return { numSliceGroupsMinus1, sliceGroupMapType, sliceGroupChangeRate };
}

/** Parameter sets seen so far (from the decoder configuration and in-band), by id. */
export class H264ParameterSets {
  private readonly sps = new Map<number, H264Sps>();
  private readonly pps = new Map<number, H264Pps>();

  /** Stores an SPS (type 7) or PPS (type 8) NAL unit; other types are ignored. */
  add(nal: Uint8Array): void {
    const type = (nal[0] ?? 0) & 0x1f;
    if (type === 7) {
      const s = parseH264Sps(nal);
      this.sps.set(s.id, s);
    } else if (type === 8) {
      const p = parseH264Pps(nal);
      this.pps.set(p.id, p);
    }
  }

  /** The PPS with `id` and the SPS it refers to; MEDIA_BITSTREAM when either is unknown. */
  resolve(ppsId: number): { sps: H264Sps; pps: H264Pps } {
    const pps = this.pps.get(ppsId);
    if (!pps) throw kwError('MEDIA_BITSTREAM', `H.264 slice refers to unknown PPS ${ppsId}`);
    const sps = this.sps.get(pps.spsId);
    if (!sps)
      throw kwError('MEDIA_BITSTREAM', `H.264 PPS ${ppsId} refers to unknown SPS ${pps.spsId}`);
    return { sps, pps };
  }
}
