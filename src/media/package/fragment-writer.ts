import { kwError } from '../../errors/index.js';
import { ByteWriter } from '../bytes.js';
import type {
  ProtectionSystemHeader,
  SampleEncryptionInfo,
  TrackEncryption,
} from '../cenc-types.js';
import {
  FRAGMENT_GROUP_INDEX_BASE,
  sampleInfoSize,
  writePssh,
  writeSaio,
  writeSaiz,
  writeSampleToGroup,
  writeSeigDescriptions,
  writeSenc,
} from './cenc-boxes.js';

/** tfhd flags (ISO/IEC 14496-12 §8.8.7.1). */
export const TFHD_DEFAULT_SAMPLE_FLAGS = 0x000020;
export const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
/** trun flags (§8.8.8.1). */
export const TRUN = {
  dataOffset: 0x001,
  duration: 0x100,
  size: 0x200,
  flags: 0x400,
  cto: 0x800,
} as const;

/** sample_flags (§8.8.3.1): a sync sample that depends on no other. */
export const SYNC_SAMPLE_FLAGS = 0x02000000;
/** sample_flags: depends on others and is_non_sync_sample. */
export const NON_SYNC_SAMPLE_FLAGS = 0x01010000;

/** One sample of a track fragment, as the trun describes it. */
export interface FragmentSample {
  readonly size: number;
  readonly duration: number;
  /** CTS - DTS; negative values make the trun version 1. */
  readonly compositionOffset: number;
  readonly flags: number;
}

/** A traf's Common Encryption data. */
export interface TrackFragmentEncryption {
  readonly withSubsamples: boolean;
  /** One per sample, in order. */
  readonly entries: readonly SampleEncryptionInfo[];
  /** When set, every sample of the traf belongs to this 'seig' group (key rotation, §6). */
  readonly seig?: TrackEncryption;
}

/** One track's part of a fragment. */
export interface TrackFragmentPlan {
  readonly trackId: number;
  readonly baseMediaDecodeTime: number;
  readonly samples: readonly FragmentSample[];
  /** The sample payloads in order (already encrypted); written to the mdat as they are. */
  readonly data: readonly Uint8Array[];
  readonly encryption?: TrackFragmentEncryption;
}

/** Positions inside a moof being written, patched once the moof size is known. */
interface Patches {
  /** trun data_offset field position and the byte offset of the track's data in the mdat payload. */
  readonly dataOffsets: Array<{ at: number; mdatOffset: number }>;
  /** saio offset field position and the senc entry start (both absolute in the moof). */
  readonly auxOffsets: Array<{ at: number; target: number }>;
}

/**
 * Writes one fragment: a 'moof' with one 'traf' per track (tfhd with default-base-is-moof,
 * tfdt, one trun, then the encryption boxes) and one 'mdat' holding each track's samples
 * contiguously in traf order. Returns the buffers to write in order: moof + mdat header,
 * then the payloads (not copied).
 *
 * @param pssh 'pssh' boxes for the moof (ISO/IEC 23001-7 §8.1 allows them in 'moof'),
 *   written after 'mfhd' and before the trafs: live streams announce the keys of the
 *   current and the next key period this way.
 */
export function writeFragment(
  sequenceNumber: number,
  trafs: readonly TrackFragmentPlan[],
  pssh: readonly ProtectionSystemHeader[] = [],
): Uint8Array[] {
  const w = new ByteWriter(4096);
  const patches: Patches = { dataOffsets: [], auxOffsets: [] };
  let mdatOffset = 0;
  w.box('moof', (moof) => {
    moof.fullBox('mfhd', 0, 0, (b) => b.u32(sequenceNumber));
    for (const p of pssh) writePssh(moof, p);
    for (const traf of trafs) {
      writeTraf(moof, traf, patches, mdatOffset);
      mdatOffset += traf.data.reduce((n, d) => n + d.length, 0);
    }
  });
  const moofSize = w.size;
  if (mdatOffset + 8 > 0xffffffff)
    throw kwError('MEDIA_TOO_LARGE', `a fragment of ${mdatOffset} bytes`);
  for (const p of patches.dataOffsets) w.patchU32(p.at, moofSize + 8 + p.mdatOffset);
  for (const p of patches.auxOffsets) w.patchU32(p.at, p.target); // relative to the moof (default-base-is-moof)
  w.u32(mdatOffset + 8).fourcc('mdat');
  return [w.toBuffer(), ...trafs.flatMap((t) => t.data)];
}

function writeTraf(
  w: ByteWriter,
  traf: TrackFragmentPlan,
  patches: Patches,
  mdatOffset: number,
): void {
  const flags = traf.samples.map((s) => s.flags);
  const uniformFlags = flags.every((f) => f === flags[0]) ? flags[0] : undefined;
  w.box('traf', (b) => {
    b.fullBox(
      'tfhd',
      0,
      TFHD_DEFAULT_BASE_IS_MOOF | (uniformFlags !== undefined ? TFHD_DEFAULT_SAMPLE_FLAGS : 0),
      (h) => {
        h.u32(traf.trackId);
        if (uniformFlags !== undefined) h.u32(uniformFlags);
      },
    );
    b.fullBox('tfdt', 1, 0, (t) => t.u64(traf.baseMediaDecodeTime));
    const at = writeTrun(b, traf.samples, uniformFlags === undefined);
    patches.dataOffsets.push({ at, mdatOffset });
    if (traf.encryption) writeEncryption(b, traf.encryption, patches);
  });
}

/** 'trun' (§8.8.8) with per-sample duration and size; returns the data_offset field position. */
function writeTrun(
  w: ByteWriter,
  samples: readonly FragmentSample[],
  perSampleFlags: boolean,
): number {
  const withCto = samples.some((s) => s.compositionOffset !== 0);
  const negative = samples.some((s) => s.compositionOffset < 0);
  const flags =
    TRUN.dataOffset |
    TRUN.duration |
    TRUN.size |
    (perSampleFlags ? TRUN.flags : 0) |
    (withCto ? TRUN.cto : 0);
  let at = -1;
  w.fullBox('trun', negative ? 1 : 0, flags, (b) => {
    b.u32(samples.length);
    at = b.size;
    b.i32(0);
    for (const s of samples) {
      b.u32(s.duration).u32(s.size);
      if (perSampleFlags) b.u32(s.flags);
      if (withCto) b.i32(s.compositionOffset);
    }
  });
  return at;
}

/** sbgp/sgpd 'seig' when the traf uses a rotated key, then saiz, saio and senc (§7). */
function writeEncryption(w: ByteWriter, enc: TrackFragmentEncryption, patches: Patches): void {
  if (enc.seig) {
    writeSampleToGroup(w, 'seig', [[enc.entries.length, FRAGMENT_GROUP_INDEX_BASE + 1]]);
    writeSeigDescriptions(w, [enc.seig]);
  }
  writeSaiz(
    w,
    enc.entries.map((e) => sampleInfoSize(e, enc.withSubsamples)),
  );
  const at = writeSaio(w);
  const target = writeSenc(w, enc.entries, enc.withSubsamples);
  patches.auxOffsets.push({ at, target });
}
