import { kwError } from '../../errors/index.js';
import { NalBitReader } from './bit-reader.js';
import { readShortTermRps, type ShortTermRps } from './h265-ref-pic-set.js';

/** The fields of an H.265 SPS (ITU-T H.265 §7.3.2.2) that slice segment headers depend on. */
export interface H265Sps {
  readonly id: number;
  readonly separateColourPlane: boolean;
  /** ChromaArrayType: 0 when separate_colour_plane_flag is set. */
  readonly chromaArrayType: number;
  /** PicSizeInCtbsY (§7.4.3.2.1). */
  readonly picSizeInCtbs: number;
  readonly log2MaxPocLsb: number;
  readonly shortTermRpsList: readonly ShortTermRps[];
  readonly longTermRefPicsPresent: boolean;
  /** used_by_curr_pic_lt_sps_flag of each long-term candidate in the SPS. */
  readonly longTermUsedBySps: readonly boolean[];
  readonly temporalMvpEnabled: boolean;
  readonly sampleAdaptiveOffsetEnabled: boolean;
}

/** The fields of an H.265 PPS (§7.3.2.3) that slice segment headers depend on. */
export interface H265Pps {
  readonly id: number;
  readonly spsId: number;
  readonly dependentSliceSegmentsEnabled: boolean;
  readonly outputFlagPresent: boolean;
  readonly numExtraSliceHeaderBits: number;
  readonly cabacInitPresent: boolean;
  readonly numRefIdxL0DefaultActiveMinus1: number;
  readonly numRefIdxL1DefaultActiveMinus1: number;
  readonly sliceChromaQpOffsetsPresent: boolean;
  readonly weightedPred: boolean;
  readonly weightedBipred: boolean;
  readonly tilesEnabled: boolean;
  readonly entropyCodingSyncEnabled: boolean;
  readonly loopFilterAcrossSlicesEnabled: boolean;
  readonly deblockingFilterOverrideEnabled: boolean;
  readonly deblockingFilterDisabled: boolean;
  readonly listsModificationPresent: boolean;
  readonly sliceSegmentHeaderExtensionPresent: boolean;
  /** pps_range_extension: chroma_qp_offset_list_enabled_flag. */
  readonly chromaQpOffsetListEnabled: boolean;
}

/** profile_tier_level(1, maxNumSubLayersMinus1) (§7.3.3): only its length matters. */
function skipProfileTierLevel(r: NalBitReader, maxSubLayersMinus1: number): void {
  r.skip(96); // general profile (88 bits) + general_level_idc
  const profilePresent: boolean[] = [];
  const levelPresent: boolean[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    profilePresent.push(r.flag());
    levelPresent.push(r.flag());
  }
  if (maxSubLayersMinus1 > 0) r.skip(2 * (8 - maxSubLayersMinus1));
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (profilePresent[i]) r.skip(88);
    if (levelPresent[i]) r.skip(8);
  }
}

/** scaling_list_data() (§7.3.4): only its length matters. */
function skipScalingListData(r: NalBitReader): void {
  for (let sizeId = 0; sizeId < 4; sizeId++) {
    for (let matrixId = 0; matrixId < 6; matrixId += sizeId === 3 ? 3 : 1) {
      if (!r.flag()) {
        r.ue(); // scaling_list_pred_matrix_id_delta
        continue;
      }
      const coefs = Math.min(64, 1 << (4 + (sizeId << 1)));
      if (sizeId > 1) r.se(); // scaling_list_dc_coef_minus8
      r.skipSe(coefs);
    }
  }
}

/** Parses an SPS NAL unit (escaped, starting at its 2-byte NAL header). */
export function parseH265Sps(nal: Uint8Array): H265Sps {
  const r = new NalBitReader(nal, 2, nal.length, 'H.265 SPS');
  const { id, maxSubLayersMinus1 } = readSpsIds(r);
  const chromaFormatIdc = r.ueMax(3, 'chroma_format_idc');
  const separateColourPlane = chromaFormatIdc === 3 && r.flag();
  const width = r.ue();
  const height = r.ue();
  if (r.flag()) r.skipUe(4); // conformance window offsets
  r.skipUe(2); // bit_depth_luma_minus8, bit_depth_chroma_minus8
  const log2MaxPocLsb = r.ueMax(12, 'log2_max_pic_order_cnt_lsb_minus4') + 4;
  const orderingInfoForAll = r.flag();
  for (let i = orderingInfoForAll ? 0 : maxSubLayersMinus1; i <= maxSubLayersMinus1; i++)
    r.skipUe(3); // max_dec_pic_buffering, max_num_reorder_pics, max_latency_increase
  const tools = readSpsCodingTools(r);
  const refs = readSpsReferenceSets(r, log2MaxPocLsb);
  const temporalMvpEnabled = r.flag();
  const ctb = 2 ** tools.ctbLog2;
  return {
    id,
    separateColourPlane,
    chromaArrayType: separateColourPlane ? 0 : chromaFormatIdc,
    picSizeInCtbs: Math.ceil(width / ctb) * Math.ceil(height / ctb),
    log2MaxPocLsb,
    ...refs,
    temporalMvpEnabled,
    sampleAdaptiveOffsetEnabled: tools.sampleAdaptiveOffsetEnabled,
  };
}

/** sps_video_parameter_set_id .. sps_seq_parameter_set_id. */
function readSpsIds(r: NalBitReader): { id: number; maxSubLayersMinus1: number } {
  r.skip(4); // sps_video_parameter_set_id
  const maxSubLayersMinus1 = r.u(3);
  if (maxSubLayersMinus1 > 6) {
    throw kwError('MEDIA_BITSTREAM', `H.265 SPS: sps_max_sub_layers_minus1 ${maxSubLayersMinus1}`);
  }
  r.skip(1); // sps_temporal_id_nesting_flag
  skipProfileTierLevel(r, maxSubLayersMinus1);
  return { id: r.ueMax(15, 'sps_seq_parameter_set_id'), maxSubLayersMinus1 };
}

/** log2_min_luma_coding_block_size_minus3 .. pcm_loop_filter_disabled_flag. */
function readSpsCodingTools(r: NalBitReader): {
  ctbLog2: number;
  sampleAdaptiveOffsetEnabled: boolean;
} {
  const minCbLog2 = r.ueMax(3, 'log2_min_luma_coding_block_size_minus3') + 3;
  const ctbLog2 = minCbLog2 + r.ueMax(3, 'log2_diff_max_min_luma_coding_block_size');
  r.skipUe(4); // transform block sizes and hierarchy depths
  if (r.flag() && r.flag()) skipScalingListData(r); // scaling_list_enabled, sps_scaling_list_data_present
  r.skip(1); // amp_enabled_flag
  const sampleAdaptiveOffsetEnabled = r.flag();
  if (r.flag()) {
    r.skip(8); // pcm sample bit depths
    r.skipUe(2); // pcm block sizes
    r.skip(1); // pcm_loop_filter_disabled_flag
  }
  return { ctbLog2, sampleAdaptiveOffsetEnabled };
}

function readSpsReferenceSets(
  r: NalBitReader,
  log2MaxPocLsb: number,
): Pick<H265Sps, 'shortTermRpsList' | 'longTermRefPicsPresent' | 'longTermUsedBySps'> {
  const count = r.ueMax(64, 'num_short_term_ref_pic_sets');
  const shortTermRpsList: ShortTermRps[] = [];
  for (let i = 0; i < count; i++)
    shortTermRpsList.push(readShortTermRps(r, i, shortTermRpsList, false));
  const longTermRefPicsPresent = r.flag();
  const longTermUsedBySps: boolean[] = [];
  if (longTermRefPicsPresent) {
    const lt = r.ueMax(32, 'num_long_term_ref_pics_sps');
    for (let i = 0; i < lt; i++) {
      r.skip(log2MaxPocLsb); // lt_ref_pic_poc_lsb_sps
      longTermUsedBySps.push(r.flag());
    }
  }
  return { shortTermRpsList, longTermRefPicsPresent, longTermUsedBySps };
}

/** Parses a PPS NAL unit (escaped, starting at its 2-byte NAL header). */
export function parseH265Pps(nal: Uint8Array): H265Pps {
  const r = new NalBitReader(nal, 2, nal.length, 'H.265 PPS');
  const id = r.ueMax(63, 'pps_pic_parameter_set_id');
  const spsId = r.ueMax(15, 'pps_seq_parameter_set_id');
  const dependentSliceSegmentsEnabled = r.flag();
  const outputFlagPresent = r.flag();
  const numExtraSliceHeaderBits = r.u(3);
  r.skip(1); // sign_data_hiding_enabled_flag
  const cabacInitPresent = r.flag();
  const numRefIdxL0DefaultActiveMinus1 = r.ueMax(14, 'num_ref_idx_l0_default_active_minus1');
  const numRefIdxL1DefaultActiveMinus1 = r.ueMax(14, 'num_ref_idx_l1_default_active_minus1');
  const { transformSkipEnabled, ...tools } = readPpsCodingTools(r);
  const tilesEnabled = r.flag();
  const entropyCodingSyncEnabled = r.flag();
  if (tilesEnabled) skipTiles(r);
  const loopFilterAcrossSlicesEnabled = r.flag();
  const deblocking = readDeblocking(r);
  if (r.flag()) skipScalingListData(r);
  const listsModificationPresent = r.flag();
  r.ue(); // log2_parallel_merge_level_minus2
  const sliceSegmentHeaderExtensionPresent = r.flag();
  return {
    id,
    spsId,
    dependentSliceSegmentsEnabled,
    outputFlagPresent,
    numExtraSliceHeaderBits,
    cabacInitPresent,
    numRefIdxL0DefaultActiveMinus1,
    numRefIdxL1DefaultActiveMinus1,
    ...tools,
    tilesEnabled,
    entropyCodingSyncEnabled,
    loopFilterAcrossSlicesEnabled,
    ...deblocking,
    listsModificationPresent,
    sliceSegmentHeaderExtensionPresent,
    chromaQpOffsetListEnabled: readPpsExtensions(r, transformSkipEnabled),
  };
}

/** init_qp_minus26 .. transquant_bypass_enabled_flag. */
function readPpsCodingTools(r: NalBitReader): Pick<
  H265Pps,
  'sliceChromaQpOffsetsPresent' | 'weightedPred' | 'weightedBipred'
> & {
  transformSkipEnabled: boolean;
} {
  r.se(); // init_qp_minus26
  r.skip(1); // constrained_intra_pred_flag
  const transformSkipEnabled = r.flag();
  if (r.flag()) r.ue(); // cu_qp_delta_enabled_flag → diff_cu_qp_delta_depth
  r.skipSe(2); // pps_cb_qp_offset, pps_cr_qp_offset
  const sliceChromaQpOffsetsPresent = r.flag();
  const weightedPred = r.flag();
  const weightedBipred = r.flag();
  r.skip(1); // transquant_bypass_enabled_flag
  return { transformSkipEnabled, sliceChromaQpOffsetsPresent, weightedPred, weightedBipred };
}

function skipTiles(r: NalBitReader): void {
  const columns = r.ueMax(255, 'num_tile_columns_minus1');
  const rows = r.ueMax(255, 'num_tile_rows_minus1');
  if (!r.flag()) {
    for (let i = 0; i < columns + rows; i++) r.ue(); // column_width_minus1, row_height_minus1
  }
  r.skip(1); // loop_filter_across_tiles_enabled_flag
}

function readDeblocking(
  r: NalBitReader,
): Pick<H265Pps, 'deblockingFilterOverrideEnabled' | 'deblockingFilterDisabled'> {
  let deblockingFilterOverrideEnabled = false;
  let deblockingFilterDisabled = false;
  if (r.flag()) {
    deblockingFilterOverrideEnabled = r.flag();
    deblockingFilterDisabled = r.flag();
    if (!deblockingFilterDisabled) r.skipSe(2);
  }
  return { deblockingFilterOverrideEnabled, deblockingFilterDisabled };
}

/**
 * pps_extension_present_flag and pps_range_extension() (§7.3.2.3.2), which can add
 * cu_chroma_qp_offset_enabled_flag to slice headers. The SCC extension (§7.3.2.3.3) changes
 * slice headers in ways we do not model (and its SPS half sits behind the VUI), so a PPS
 * that signals it is refused rather than guessed.
 */
function readPpsExtensions(r: NalBitReader, transformSkipEnabled: boolean): boolean {
  if (r.atEnd || !r.flag()) return false;
  const range = r.flag();
  r.skip(2); // pps_multilayer_extension_flag, pps_3d_extension_flag
  const scc = r.flag();
  r.skip(3); // pps_extension_4bits
  if (scc)
    throw kwError(
      'MEDIA_UNSUPPORTED_CODEC',
      'H.265 screen content coding (SCC) extensions are not supported',
    );
  if (!range) return false;
  if (transformSkipEnabled) r.ue(); // log2_max_transform_skip_block_size_minus2
  r.skip(1); // cross_component_prediction_enabled_flag
  return r.flag(); // chroma_qp_offset_list_enabled_flag
}

/** Parameter sets seen so far (from hvcC and in-band), by id. */
export class H265ParameterSets {
  private readonly sps = new Map<number, H265Sps>();
  private readonly pps = new Map<number, H265Pps>();

  /** Stores an SPS (type 33) or PPS (type 34) NAL unit; other types are ignored. */
  add(nal: Uint8Array): void {
    const type = ((nal[0] ?? 0) >> 1) & 0x3f;
    if (type === 33) {
      const s = parseH265Sps(nal);
      this.sps.set(s.id, s);
    } else if (type === 34) {
      const p = parseH265Pps(nal);
      this.pps.set(p.id, p);
    }
  }

  /** The PPS with `id` and its SPS; MEDIA_BITSTREAM when either is unknown. */
  resolve(ppsId: number): { sps: H265Sps; pps: H265Pps } {
    const pps = this.pps.get(ppsId);
    if (!pps) throw kwError('MEDIA_BITSTREAM', `H.265 slice refers to unknown PPS ${ppsId}`);
    const sps = this.sps.get(pps.spsId);
    if (!sps)
      throw kwError('MEDIA_BITSTREAM', `H.265 PPS ${ppsId} refers to unknown SPS ${pps.spsId}`);
    return { sps, pps };
  }
}
