import { makeBox, type Box } from '../box.js';
import { ByteWriter } from '../bytes.js';
import type {
  ProtectionSystemHeader,
  SampleEncryptionInfo,
  TrackEncryption,
} from '../cenc-types.js';
import type { CencScheme } from '../sample-crypto.js';

/** senc flag: entries carry subsample maps (ISO/IEC 23001-7 §7.2.1). */
export const SENC_SUBSAMPLES = 0x2;
/** sbgp group_description_index base for the traf's own sgpd entries (ISO/IEC 14496-12 §8.9.4). */
export const FRAGMENT_GROUP_INDEX_BASE = 0x10000;

/** Body of a 'tenc' entry shared with 'seig' (§8.2.2 and §6.1): pattern, isProtected, IV size, KID, constant IV. */
function writeEncryptionDefaults(w: ByteWriter, te: TrackEncryption): void {
  w.u8((te.cryptByteBlock << 4) | te.skipByteBlock);
  w.u8(te.isProtected).u8(te.perSampleIvSize).bytes(te.kid);
  if (te.isProtected === 1 && te.perSampleIvSize === 0) {
    const iv = te.constantIv ?? new Uint8Array(16);
    w.u8(iv.length).bytes(iv);
  }
}

/** 'tenc' (§8.2): version 1 carries the pattern; version 0 writes the reserved byte as 0. */
export function writeTenc(w: ByteWriter, te: TrackEncryption, version: 0 | 1): void {
  w.fullBox('tenc', version, 0, (b) => {
    b.u8(0); // reserved
    writeEncryptionDefaults(b, version === 0 ? { ...te, cryptByteBlock: 0, skipByteBlock: 0 } : te);
  });
}

/** 'sinf' (ISO/IEC 14496-12 §8.12) with frma, schm (version 1.0, §4.2) and schi/tenc. */
export function sinfBox(
  originalFormat: string,
  scheme: CencScheme,
  te: TrackEncryption,
  tencVersion: 0 | 1,
): Box {
  const w = new ByteWriter(128);
  w.box('frma', (b) => b.fourcc(originalFormat));
  w.fullBox('schm', 0, 0, (b) => b.fourcc(scheme).u32(0x00010000));
  w.box('schi', (b) => writeTenc(b, te, tencVersion));
  return makeBox('sinf', w.toBuffer());
}

/** 'pssh' (§8.1): version 1 lists KIDs. */
export function writePssh(w: ByteWriter, pssh: ProtectionSystemHeader): void {
  w.fullBox('pssh', pssh.version, 0, (b) => {
    b.bytes(pssh.systemId);
    if (pssh.version >= 1) {
      b.u32(pssh.kids.length);
      for (const kid of pssh.kids) b.bytes(kid);
    }
    b.u32(pssh.data.length).bytes(pssh.data);
  });
}

/** Size of one sample's auxiliary information: IV plus the subsample map, if any. */
export function sampleInfoSize(info: SampleEncryptionInfo, withSubsamples: boolean): number {
  return info.iv.length + (withSubsamples ? 2 + 6 * info.subsamples.length : 0);
}

/**
 * 'senc' (§7.2). Returns the absolute position in `w` of the first entry byte, which
 * 'saio' must point at.
 */
export function writeSenc(
  w: ByteWriter,
  entries: readonly SampleEncryptionInfo[],
  withSubsamples: boolean,
): number {
  let dataStart = -1;
  w.fullBox('senc', 0, withSubsamples ? SENC_SUBSAMPLES : 0, (b) => {
    b.u32(entries.length);
    dataStart = b.size;
    for (const e of entries) {
      b.bytes(e.iv);
      if (!withSubsamples) continue;
      b.u16(e.subsamples.length);
      for (const s of e.subsamples) b.u16(s.clear).u32(s.protected);
    }
  });
  return dataStart;
}

/** 'saiz' (ISO/IEC 14496-12 §8.7.8): a default size when all entries agree, else one byte each. */
export function writeSaiz(w: ByteWriter, sizes: readonly number[]): void {
  const first = sizes[0] ?? 0;
  const uniform = first > 0 && sizes.every((s) => s === first);
  w.fullBox('saiz', 0, 0, (b) => {
    b.u8(uniform ? first : 0).u32(sizes.length);
    if (!uniform) for (const s of sizes) b.u8(s);
  });
}

/**
 * 'saio' (§8.7.9) with one offset. Returns the absolute position in `w` of the offset field,
 * to be patched once the senc position relative to the moof is known.
 */
export function writeSaio(w: ByteWriter): number {
  let at = -1;
  w.fullBox('saio', 0, 0, (b) => {
    b.u32(1);
    at = b.size;
    b.u32(0);
  });
  return at;
}

/** 'sgpd' (§8.9.3) version 1 with 'seig' entries (ISO/IEC 23001-7 §6). */
export function writeSeigDescriptions(w: ByteWriter, entries: readonly TrackEncryption[]): void {
  const bodies = entries.map((te) => {
    const e = new ByteWriter(64);
    e.u8(0); // reserved
    writeEncryptionDefaults(e, te);
    return e.toBuffer();
  });
  const first = bodies[0]?.length ?? 0;
  const uniform = bodies.every((b) => b.length === first);
  w.fullBox('sgpd', 1, 0, (b) => {
    b.fourcc('seig')
      .u32(uniform ? first : 0)
      .u32(bodies.length);
    for (const body of bodies) {
      if (!uniform) b.u32(body.length);
      b.bytes(body);
    }
  });
}

/** 'sbgp' (§8.9.2) version 0: runs of (sample_count, group_description_index). */
export function writeSampleToGroup(
  w: ByteWriter,
  groupingType: string,
  runs: readonly (readonly [number, number])[],
): void {
  w.fullBox('sbgp', 0, 0, (b) => {
    b.fourcc(groupingType).u32(runs.length);
    for (const [count, index] of runs) b.u32(count).u32(index);
  });
}
