import { kwError } from '../../errors/index.js';
import type { NalBitReader } from './bit-reader.js';

/** A short-term reference picture set (ITU-T H.265 §7.4.8) after derivation. */
export interface ShortTermRps {
  /** DeltaPocS0 (negative, nearest first) with UsedByCurrPicS0. */
  readonly s0: readonly RpsEntry[];
  /** DeltaPocS1 (positive, nearest first) with UsedByCurrPicS1. */
  readonly s1: readonly RpsEntry[];
}

/** One picture of a reference picture set. */
export interface RpsEntry {
  readonly deltaPoc: number;
  readonly used: boolean;
}

/** A DPB never holds more than 16 pictures (§A.4.2: sps_max_dec_pic_buffering ≤ 16). */
const MAX_PICS = 16;

/** Pictures of an RPS that the current picture references (its share of NumPicTotalCurr, §7.4.7.2). */
export function usedPictureCount(rps: ShortTermRps): number {
  return rps.s0.filter((e) => e.used).length + rps.s1.filter((e) => e.used).length;
}

/**
 * st_ref_pic_set(stRpsIdx) (§7.3.7). `previous` holds the sets already parsed (the SPS's);
 * when stRpsIdx equals previous.length in a slice header, delta_idx_minus1 is present.
 */
export function readShortTermRps(
  r: NalBitReader,
  stRpsIdx: number,
  previous: readonly ShortTermRps[],
  inSliceHeader: boolean,
): ShortTermRps {
  const interPrediction = stRpsIdx !== 0 && r.flag();
  if (!interPrediction) return readExplicitRps(r);
  const deltaIdx = inSliceHeader ? r.ueMax(stRpsIdx - 1, 'delta_idx_minus1') + 1 : 1;
  const ref = previous[stRpsIdx - deltaIdx];
  if (!ref)
    throw kwError(
      'MEDIA_BITSTREAM',
      `H.265 RPS ${stRpsIdx} predicts from missing RPS ${stRpsIdx - deltaIdx}`,
    );
  const sign = r.bit();
  const deltaRps = (1 - 2 * sign) * (r.ueMax(2 ** 15 - 1, 'abs_delta_rps_minus1') + 1);
  const refCount = ref.s0.length + ref.s1.length;
  const used: boolean[] = [];
  const useDelta: boolean[] = [];
  for (let j = 0; j <= refCount; j++) {
    const u = r.flag();
    used.push(u);
    useDelta.push(u ? true : r.flag()); // use_delta_flag is inferred 1 when absent
  }
  return deriveInterRps(ref, deltaRps, used, useDelta);
}

function readExplicitRps(r: NalBitReader): ShortTermRps {
  const negatives = r.ueMax(MAX_PICS, 'num_negative_pics');
  const positives = r.ueMax(MAX_PICS, 'num_positive_pics');
  const s0: RpsEntry[] = [];
  let poc = 0;
  for (let i = 0; i < negatives; i++) {
    poc -= r.ueMax(2 ** 15 - 1, 'delta_poc_s0_minus1') + 1;
    s0.push({ deltaPoc: poc, used: r.flag() });
  }
  const s1: RpsEntry[] = [];
  poc = 0;
  for (let i = 0; i < positives; i++) {
    poc += r.ueMax(2 ** 15 - 1, 'delta_poc_s1_minus1') + 1;
    s1.push({ deltaPoc: poc, used: r.flag() });
  }
  return { s0, s1 };
}

/** Equations 7-61 and 7-62: the predicted set from the reference set and the flags. */
function deriveInterRps(
  ref: ShortTermRps,
  deltaRps: number,
  used: boolean[],
  useDelta: boolean[],
): ShortTermRps {
  const nNeg = ref.s0.length;
  const nAll = nNeg + ref.s1.length;
  const pick = (k: number): boolean => useDelta[k] === true;
  const entry = (deltaPoc: number, k: number): RpsEntry => ({ deltaPoc, used: used[k] === true });
  const s0: RpsEntry[] = [];
  const s1: RpsEntry[] = [];
  for (let j = ref.s1.length - 1; j >= 0; j--) {
    const d = (ref.s1[j]?.deltaPoc ?? 0) + deltaRps;
    if (d < 0 && pick(nNeg + j)) s0.push(entry(d, nNeg + j));
  }
  if (deltaRps < 0 && pick(nAll)) s0.push(entry(deltaRps, nAll));
  for (let j = 0; j < nNeg; j++) {
    const d = (ref.s0[j]?.deltaPoc ?? 0) + deltaRps;
    if (d < 0 && pick(j)) s0.push(entry(d, j));
  }
  for (let j = nNeg - 1; j >= 0; j--) {
    const d = (ref.s0[j]?.deltaPoc ?? 0) + deltaRps;
    if (d > 0 && pick(j)) s1.push(entry(d, j));
  }
  if (deltaRps > 0 && pick(nAll)) s1.push(entry(deltaRps, nAll));
  for (let j = 0; j < ref.s1.length; j++) {
    const d = (ref.s1[j]?.deltaPoc ?? 0) + deltaRps;
    if (d > 0 && pick(nNeg + j)) s1.push(entry(d, nNeg + j));
  }
  if (s0.length > MAX_PICS || s1.length > MAX_PICS) {
    throw kwError('MEDIA_BITSTREAM', 'H.265 predicted RPS holds more than 16 pictures');
  }
  return { s0, s1 };
}
