import { kwError } from '../../errors/index.js';
import { boxReader, type Box } from '../box.js';
import { ByteReader } from '../bytes.js';
import type { SampleGroupEncryption } from '../cenc-types.js';
import { checkIvSize, readConstantIv } from './protection.js';

/** group_description_index values above this refer to the fragment's own sgpd (§8.9.4). */
export const FRAGMENT_LOCAL_GROUP_BASE = 0x10000;

/** 'sbgp' (ISO/IEC 14496-12 §8.9.2): runs of samples mapped to group descriptions. */
export interface SampleToGroup {
  readonly groupingType: string;
  readonly groupingTypeParameter?: number;
  /** Pairs: sample_count, group_description_index. */
  readonly entries: Uint32Array;
}

/** 'sgpd' (§8.9.3): the group descriptions, each as its raw bytes. */
export interface SampleGroupDescription {
  readonly groupingType: string;
  readonly defaultDescriptionIndex: number;
  readonly entries: readonly Uint8Array[];
}

/** Parses 'sbgp'. */
export function parseSampleToGroup(box: Box): SampleToGroup {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  const groupingType = r.fourcc();
  const groupingTypeParameter = version === 1 ? r.u32() : undefined;
  const count = r.u32();
  r.need(count * 8, `${count}-entry table`);
  const entries = new Uint32Array(count * 2);
  for (let i = 0; i < entries.length; i++) entries[i] = r.u32();
  return groupingTypeParameter === undefined
    ? { groupingType, entries }
    : { groupingType, groupingTypeParameter, entries };
}

/** Size of a version 0 seig entry (which carries no length): the fixed part and its constant IV. */
function seigEntrySize(r: ByteReader): number {
  r.need(20, 'seig entry');
  const isProtected = r.buf[r.index + 2]!;
  const ivSize = r.buf[r.index + 3]!;
  if (isProtected !== 1 || ivSize !== 0) return 20;
  r.need(21, 'seig entry');
  return 21 + r.buf[r.index + 20]!;
}

/** Parses 'sgpd'. Version 0 entries have no length field: only 'seig' ones can be sized. */
export function parseSampleGroupDescription(box: Box): SampleGroupDescription {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  const groupingType = r.fourcc();
  const defaultLength = version === 1 ? r.u32() : 0;
  const defaultDescriptionIndex = version >= 2 ? r.u32() : 0;
  const count = r.u32();
  r.need(
    count * (defaultLength === 0 && version === 1 ? 4 : defaultLength),
    `${count}-entry table`,
  );
  const entries: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    let length = defaultLength;
    if (version === 1 && length === 0) length = r.u32();
    else if (version !== 1) {
      if (groupingType !== 'seig')
        throw kwError(
          'MEDIA_UNSUPPORTED',
          `sgpd v${version} '${groupingType}' entries have no size`,
          { box: 'sgpd' },
        );
      length = seigEntrySize(r);
    }
    entries.push(r.bytes(length));
  }
  return { groupingType, defaultDescriptionIndex, entries };
}

/** Parses a 'seig' CencSampleEncryptionInformationGroupEntry (ISO/IEC 23001-7 §6). */
export function parseSeigEntry(bytes: Uint8Array, offset = 0): SampleGroupEncryption {
  const r = new ByteReader(bytes, 0, bytes.length, 'seig', offset);
  r.skip(1);
  const pattern = r.u8();
  const isProtected = r.u8();
  const perSampleIvSize = checkIvSize(r.u8(), 'seig');
  const kid = Uint8Array.from(r.bytes(16));
  const base = {
    isProtected,
    perSampleIvSize,
    kid,
    cryptByteBlock: pattern >> 4,
    skipByteBlock: pattern & 0x0f,
  };
  if (isProtected === 1 && perSampleIvSize === 0) return { ...base, constantIv: readConstantIv(r) };
  return base;
}

/** Expands sbgp runs to one group_description_index per sample (0 = no group). */
export function groupIndexPerSample(sbgp: SampleToGroup, sampleCount: number): Uint32Array {
  const out = new Uint32Array(sampleCount);
  let at = 0;
  for (let i = 0; i + 1 < sbgp.entries.length && at < sampleCount; i += 2) {
    const n = Math.min(sbgp.entries[i]!, sampleCount - at);
    out.fill(sbgp.entries[i + 1]!, at, at + n);
    at += n;
  }
  return out;
}
