import { kwError } from '../../errors/index.js';
import { NalBitReader, ceilLog2 } from './bit-reader.js';
import type { H265ParameterSets, H265Pps, H265Sps } from './h265-parameter-sets.js';
import { readShortTermRps, usedPictureCount } from './h265-ref-pic-set.js';

/** slice_type (ITU-T H.265 Table 7-7). */
const SLICE = { B: 0, P: 1, I: 2 } as const;

/** NAL unit types (Table 7-1). */
const NAL = { BLA_W_LP: 16, IDR_W_RADL: 19, IDR_N_LP: 20, RSV_IRAP_23: 23 } as const;

/** Whether a NAL unit type is a coded slice segment the packager parses: TRAIL..RASL and BLA..CRA. */
export function isH265SliceNalType(type: number): boolean {
  return (type >= 0 && type <= 9) || (type >= 16 && type <= 21);
}

/** What later parts of a slice segment header depend on. */
interface SliceState {
  readonly sps: H265Sps;
  readonly pps: H265Pps;
  readonly nalType: number;
  sliceType: number;
  numPicTotalCurr: number;
  temporalMvp: boolean;
  sao: boolean;
}

/**
 * The size in bits of slice_segment_header() (§7.3.6.1), through byte_alignment(), counted
 * in the escaped stream after the 2-byte NAL unit header.
 *
 * @param nal the whole NAL unit, escaped, starting at its header
 */
export function h265SliceHeaderBits(nal: Uint8Array, sets: H265ParameterSets): number {
  const nalType = ((nal[0] ?? 0) >> 1) & 0x3f;
  if (!isH265SliceNalType(nalType))
    throw kwError('MEDIA_BITSTREAM', `H.265 NAL unit type ${nalType} is not a slice segment`);
  const r = new NalBitReader(nal, 2, nal.length, 'H.265 slice segment header');
  const firstInPic = r.flag();
  if (nalType >= NAL.BLA_W_LP && nalType <= NAL.RSV_IRAP_23) r.skip(1); // no_output_of_prior_pics_flag
  const { sps, pps } = sets.resolve(r.ueMax(63, 'slice_pic_parameter_set_id'));
  let dependent = false;
  if (!firstInPic) {
    if (pps.dependentSliceSegmentsEnabled) dependent = r.flag();
    r.skip(ceilLog2(sps.picSizeInCtbs)); // slice_segment_address
  }
  if (!dependent) {
    const s: SliceState = {
      sps,
      pps,
      nalType,
      sliceType: SLICE.I,
      numPicTotalCurr: 0,
      temporalMvp: false,
      sao: false,
    };
    readSliceFields(r, s);
  }
  readEntryPointsAndExtension(r, pps);
  readByteAlignment(r);
  return r.rawBitsRead;
}

/** The fields of an independent slice segment (inside `if (!dependent_slice_segment_flag)`). */
function readSliceFields(r: NalBitReader, s: SliceState): void {
  r.skip(s.pps.numExtraSliceHeaderBits); // slice_reserved_flag[]
  s.sliceType = r.ueMax(2, 'slice_type');
  if (s.pps.outputFlagPresent) r.skip(1); // pic_output_flag
  if (s.sps.separateColourPlane) r.skip(2); // colour_plane_id
  if (s.nalType !== NAL.IDR_W_RADL && s.nalType !== NAL.IDR_N_LP) readPocAndRps(r, s);
  if (s.sps.sampleAdaptiveOffsetEnabled) {
    const luma = r.flag();
    const chroma = s.sps.chromaArrayType !== 0 && r.flag();
    s.sao = luma || chroma;
  }
  if (s.sliceType === SLICE.P || s.sliceType === SLICE.B) readInterFields(r, s);
  r.se(); // slice_qp_delta
  if (s.pps.sliceChromaQpOffsetsPresent) r.skipSe(2);
  if (s.pps.chromaQpOffsetListEnabled) r.skip(1); // cu_chroma_qp_offset_enabled_flag
  readDeblockingFields(r, s);
}

/** slice_pic_order_cnt_lsb .. slice_temporal_mvp_enabled_flag. */
function readPocAndRps(r: NalBitReader, s: SliceState): void {
  const { sps } = s;
  r.skip(sps.log2MaxPocLsb); // slice_pic_order_cnt_lsb
  const count = sps.shortTermRpsList.length;
  let rps = sps.shortTermRpsList[0];
  if (!r.flag()) {
    rps = readShortTermRps(r, count, sps.shortTermRpsList, true);
  } else if (count > 1) {
    const idx = r.u(ceilLog2(count));
    rps = sps.shortTermRpsList[idx];
  }
  if (!rps)
    throw kwError(
      'MEDIA_BITSTREAM',
      'H.265 slice selects a short-term RPS the SPS does not define',
    );
  s.numPicTotalCurr = usedPictureCount(rps) + readLongTermPictures(r, sps);
  if (sps.temporalMvpEnabled) s.temporalMvp = r.flag();
}

/** The long-term picture list; returns how many of its pictures the current one uses. */
function readLongTermPictures(r: NalBitReader, sps: H265Sps): number {
  if (!sps.longTermRefPicsPresent) return 0;
  const candidates = sps.longTermUsedBySps.length;
  const fromSps = candidates > 0 ? r.ueMax(candidates, 'num_long_term_sps') : 0;
  const explicit = r.ueMax(32, 'num_long_term_pics');
  let used = 0;
  for (let i = 0; i < fromSps + explicit; i++) {
    if (i < fromSps) {
      const idx = candidates > 1 ? r.u(ceilLog2(candidates)) : 0;
      if (sps.longTermUsedBySps[idx] === true) used++;
    } else {
      r.skip(sps.log2MaxPocLsb); // poc_lsb_lt
      if (r.flag()) used++; // used_by_curr_pic_lt_flag
    }
    if (r.flag()) r.ue(); // delta_poc_msb_present_flag → delta_poc_msb_cycle_lt
  }
  return used;
}

/** num_ref_idx_active_override_flag .. five_minus_max_num_merge_cand. */
function readInterFields(r: NalBitReader, s: SliceState): void {
  const isB = s.sliceType === SLICE.B;
  let l0 = s.pps.numRefIdxL0DefaultActiveMinus1;
  let l1 = s.pps.numRefIdxL1DefaultActiveMinus1;
  if (r.flag()) {
    l0 = r.ueMax(14, 'num_ref_idx_l0_active_minus1');
    if (isB) l1 = r.ueMax(14, 'num_ref_idx_l1_active_minus1');
  }
  if (s.pps.listsModificationPresent && s.numPicTotalCurr > 1) {
    const bits = ceilLog2(s.numPicTotalCurr);
    if (r.flag()) r.skip(bits * (l0 + 1)); // list_entry_l0
    if (isB && r.flag()) r.skip(bits * (l1 + 1)); // list_entry_l1
  }
  if (isB) r.skip(1); // mvd_l1_zero_flag
  if (s.pps.cabacInitPresent) r.skip(1); // cabac_init_flag
  if (s.temporalMvp) {
    const fromL0 = isB ? r.flag() : true; // collocated_from_l0_flag, inferred 1
    if ((fromL0 && l0 > 0) || (!fromL0 && l1 > 0)) r.ue(); // collocated_ref_idx
  }
  if ((s.pps.weightedPred && !isB) || (s.pps.weightedBipred && isB)) {
    readPredWeightTable(r, s.sps.chromaArrayType, l0, isB ? l1 : -1);
  }
  r.ue(); // five_minus_max_num_merge_cand
}

/**
 * pred_weight_table() (§7.3.6.3). The luma/chroma weight flags are present for every
 * reference unless it is the current picture or another layer, which only SCC and
 * multi-layer streams allow (both refused earlier).
 */
function readPredWeightTable(
  r: NalBitReader,
  chromaArrayType: number,
  l0: number,
  l1: number,
): void {
  r.ue(); // luma_log2_weight_denom
  if (chromaArrayType !== 0) r.se(); // delta_chroma_log2_weight_denom
  for (const count of [l0, l1]) {
    if (count < 0) continue;
    const luma: boolean[] = [];
    const chroma: boolean[] = [];
    for (let i = 0; i <= count; i++) luma.push(r.flag());
    for (let i = 0; i <= count; i++) chroma.push(chromaArrayType !== 0 && r.flag());
    for (let i = 0; i <= count; i++) {
      if (luma[i]) r.skipSe(2); // delta_luma_weight, luma_offset
      if (chroma[i]) r.skipSe(4); // delta_chroma_weight, delta_chroma_offset for Cb and Cr
    }
  }
}

/** deblocking_filter_override_flag .. slice_loop_filter_across_slices_enabled_flag. */
function readDeblockingFields(r: NalBitReader, s: SliceState): void {
  let disabled = s.pps.deblockingFilterDisabled;
  const override = s.pps.deblockingFilterOverrideEnabled && r.flag();
  if (override) {
    disabled = r.flag();
    if (!disabled) r.skipSe(2); // slice_beta_offset_div2, slice_tc_offset_div2
  }
  if (s.pps.loopFilterAcrossSlicesEnabled && (s.sao || !disabled)) r.skip(1);
}

/** num_entry_point_offsets .. slice_segment_header_extension_data_byte. */
function readEntryPointsAndExtension(r: NalBitReader, pps: H265Pps): void {
  if (pps.tilesEnabled || pps.entropyCodingSyncEnabled) {
    const offsets = r.ueMax(440 * 1024, 'num_entry_point_offsets');
    if (offsets > 0) {
      const bits = r.ueMax(31, 'offset_len_minus1') + 1;
      r.skip(bits * offsets);
    }
  }
  if (pps.sliceSegmentHeaderExtensionPresent) {
    r.skip(8 * r.ueMax(256, 'slice_segment_header_extension_length'));
  }
}

/** byte_alignment() (§7.3.2.12): a one bit, then zero bits up to the byte boundary. */
function readByteAlignment(r: NalBitReader): void {
  if (!r.flag())
    throw kwError('MEDIA_BITSTREAM', 'H.265 slice segment header: alignment_bit_equal_to_one is 0');
  while (!r.byteAligned) {
    if (r.flag())
      throw kwError('MEDIA_BITSTREAM', 'H.265 slice segment header: alignment bit is not 0');
  }
}
