import { kwError } from '../../errors/index.js';
import { NalBitReader } from './bit-reader.js';
import type { H264ParameterSets, H264Pps, H264Sps } from './h264-parameter-sets.js';

/** slice_type % 5 (ITU-T H.264 Table 7-6). */
const SLICE = { P: 0, B: 1, I: 2, SP: 3, SI: 4 } as const;

/** NAL unit types of coded slices whose header the packager parses (§7.4.1, Table 7-1). */
export const H264_SLICE_NAL_TYPES: ReadonlySet<number> = new Set([1, 5]);

/** The part of a slice header the rest of the header depends on. */
interface SliceContext {
  readonly sps: H264Sps;
  readonly pps: H264Pps;
  readonly sliceType: number;
  readonly nalRefIdc: number;
  readonly idr: boolean;
}

/**
 * The size in bits of the slice_header() (§7.3.3) of a coded-slice NAL unit (type 1 or 5),
 * counted in the escaped stream after the 1-byte NAL unit header.
 *
 * @param nal the whole NAL unit, escaped, starting at its header byte
 */
export function h264SliceHeaderBits(nal: Uint8Array, sets: H264ParameterSets): number {
  const header = nal[0] ?? 0;
  const nalType = header & 0x1f;
  if (!H264_SLICE_NAL_TYPES.has(nalType)) {
    throw kwError('MEDIA_BITSTREAM', `H.264 NAL unit type ${nalType} is not a coded slice`);
  }
  const r = new NalBitReader(nal, 1, nal.length, 'H.264 slice header');
  r.ue(); // first_mb_in_slice
  const sliceType = r.ueMax(9, 'slice_type') % 5;
  const { sps, pps } = sets.resolve(r.ueMax(255, 'pic_parameter_set_id'));
  const ctx: SliceContext = {
    sps,
    pps,
    sliceType,
    nalRefIdc: (header >> 5) & 3,
    idr: nalType === 5,
  };
  readPictureFields(r, ctx);
  readReferenceFields(r, ctx);
  if (ctx.nalRefIdc !== 0) readDecRefPicMarking(r, ctx.idr);
  readTail(r, ctx);
  return r.rawBitsRead;
}

/** colour_plane_id .. redundant_pic_cnt. */
function readPictureFields(r: NalBitReader, { sps, pps, idr }: SliceContext): void {
  if (sps.separateColourPlane) r.skip(2);
  r.skip(sps.log2MaxFrameNum); // frame_num
  let fieldPic = false;
  if (!sps.frameMbsOnly) {
    fieldPic = r.flag();
    if (fieldPic) r.skip(1); // bottom_field_flag
  }
  if (idr) r.ue(); // idr_pic_id
  if (sps.picOrderCntType === 0) {
    r.skip(sps.log2MaxPicOrderCntLsb);
    if (pps.bottomFieldPicOrderInFramePresent && !fieldPic) r.se();
  }
  if (sps.picOrderCntType === 1 && !sps.deltaPicOrderAlwaysZero) {
    r.se();
    if (pps.bottomFieldPicOrderInFramePresent && !fieldPic) r.se();
  }
  if (pps.redundantPicCntPresent) r.ue();
}

/** direct_spatial_mv_pred .. pred_weight_table. */
function readReferenceFields(r: NalBitReader, { sps, pps, sliceType }: SliceContext): void {
  const isB = sliceType === SLICE.B;
  const isP = sliceType === SLICE.P || sliceType === SLICE.SP;
  if (isB) r.skip(1); // direct_spatial_mv_pred_flag
  let l0 = pps.numRefIdxL0DefaultActiveMinus1;
  let l1 = pps.numRefIdxL1DefaultActiveMinus1;
  if ((isP || isB) && r.flag()) {
    l0 = r.ueMax(31, 'num_ref_idx_l0_active_minus1');
    if (isB) l1 = r.ueMax(31, 'num_ref_idx_l1_active_minus1');
  }
  // ref_pic_list_modification() (§7.3.3.1); types 20/21 are never parsed here.
  if (sliceType !== SLICE.I && sliceType !== SLICE.SI) readModificationList(r);
  if (isB) readModificationList(r);
  if ((pps.weightedPred && isP) || (pps.weightedBipredIdc === 1 && isB)) {
    readPredWeightTable(r, sps.chromaArrayType, l0, isB ? l1 : -1);
  }
}

function readModificationList(r: NalBitReader): void {
  if (!r.flag()) return;
  for (let guard = 0; ; guard++) {
    if (guard > 64)
      throw kwError('MEDIA_BITSTREAM', 'H.264 ref_pic_list_modification does not terminate');
    const idc = r.ueMax(5, 'modification_of_pic_nums_idc');
    if (idc === 3) return;
    r.ue(); // abs_diff_pic_num_minus1 or long_term_pic_num (idc 0..2); idc 4/5 carry one too (MVC)
  }
}

/** pred_weight_table() (§7.3.3.2). `l1` is -1 for P slices. */
function readPredWeightTable(
  r: NalBitReader,
  chromaArrayType: number,
  l0: number,
  l1: number,
): void {
  r.ue(); // luma_log2_weight_denom
  if (chromaArrayType !== 0) r.ue(); // chroma_log2_weight_denom
  for (const count of [l0, l1]) {
    for (let i = 0; i <= count; i++) {
      if (r.flag()) r.skipSe(2);
      if (chromaArrayType !== 0 && r.flag()) r.skipSe(4);
    }
  }
}

/** dec_ref_pic_marking() (§7.3.3.3). */
function readDecRefPicMarking(r: NalBitReader, idr: boolean): void {
  if (idr) {
    r.skip(2); // no_output_of_prior_pics_flag, long_term_reference_flag
    return;
  }
  if (!r.flag()) return; // adaptive_ref_pic_marking_mode_flag
  for (let guard = 0; ; guard++) {
    if (guard > 66)
      throw kwError('MEDIA_BITSTREAM', 'H.264 dec_ref_pic_marking does not terminate');
    const mmco = r.ueMax(6, 'memory_management_control_operation');
    if (mmco === 0) return;
    if (mmco === 1 || mmco === 3) r.ue();
    if (mmco === 2) r.ue();
    if (mmco === 3 || mmco === 6) r.ue();
    if (mmco === 4) r.ue();
  }
}

/** cabac_init_idc .. slice_group_change_cycle. */
function readTail(r: NalBitReader, { sps, pps, sliceType }: SliceContext): void {
  if (pps.entropyCodingMode && sliceType !== SLICE.I && sliceType !== SLICE.SI) r.ue(); // cabac_init_idc
  r.se(); // slice_qp_delta
  if (sliceType === SLICE.SP || sliceType === SLICE.SI) {
    if (sliceType === SLICE.SP) r.skip(1); // sp_for_switch_flag
    r.se(); // slice_qs_delta
  }
  if (pps.deblockingFilterControlPresent) {
    const idc = r.ueMax(2, 'disable_deblocking_filter_idc');
    if (idc !== 1) r.skipSe(2);
  }
  if (pps.numSliceGroupsMinus1 > 0 && pps.sliceGroupMapType >= 3 && pps.sliceGroupMapType <= 5) {
    r.skip(sliceGroupChangeCycleBits(sps.picSizeInMapUnits, pps.sliceGroupChangeRate));
  }
}

/** Ceil(Log2(PicSizeInMapUnits ÷ SliceGroupChangeRate + 1)) with exact division (§7.4.3). */
export function sliceGroupChangeCycleBits(picSizeInMapUnits: number, rate: number): number {
  let bits = 0;
  while (2 ** bits * rate < picSizeInMapUnits + rate) bits++;
  return bits;
}
