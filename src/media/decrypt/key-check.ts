import type { Box } from '../box.js';
import type { SampleEntry } from '../boxes/index.js';
import type { CencScheme } from '../sample-crypto.js';

/**
 * Wrong-key detection. AES-CTR and AES-CBC carry no integrity, so a wrong key yields noise.
 * These checks look only at bytes that were encrypted and only for syntax that every
 * conforming stream has, so a correct decryption is never rejected:
 * - H.264/H.265: NAL length prefixes walk the sample exactly, forbidden_zero_bit is 0, and
 *   the last byte of a NAL unit is not 0x00 (ISO/IEC 14496-10 §7.4.1, 23008-2 §7.4.2);
 * - AAC (raw_data_block, AOT 1-5/29): the first element is not ID_END (ISO/IEC 14496-3 §4.5.2.1);
 * - AC-3/E-AC-3: the frame starts with the sync word 0x0B77 (ETSI TS 102 366 §4.3).
 */

/** Which bytes of a decrypted sample were encrypted. */
export interface EncryptedMap {
  readonly scheme: CencScheme;
  readonly cryptByteBlock: number;
  readonly skipByteBlock: number;
  /** Pairs clear/protected, from `subStart`, `subCount` pairs; none = whole sample. */
  readonly subsamples: Uint32Array;
  readonly subStart: number;
  readonly subCount: number;
}

/** True when byte `pos` of a sample of `size` bytes was encrypted (ISO/IEC 23001-7 §9.5-9.7). */
export function wasEncrypted(map: EncryptedMap, size: number, pos: number): boolean {
  if (map.subCount === 0) return inProtectedRange(map, pos, size);
  let at = 0;
  for (let k = 0; k < map.subCount; k++) {
    const clear = map.subsamples[2 * (map.subStart + k)]!;
    const prot = map.subsamples[2 * (map.subStart + k) + 1]!;
    at += clear;
    if (pos < at) return false;
    if (pos < at + prot) return inProtectedRange(map, pos - at, prot);
    at += prot;
  }
  return false;
}

function inProtectedRange(map: EncryptedMap, q: number, length: number): boolean {
  if (map.scheme === 'cenc') return true;
  // Block modes and patterns leave a trailing partial block clear (§9.6.1, §10.2-10.4).
  if (q >= length - (length % 16)) return false;
  if (map.scheme === 'cbc1' || map.cryptByteBlock === 0) return true;
  return Math.floor(q / 16) % (map.cryptByteBlock + map.skipByteBlock) < map.cryptByteBlock;
}

/** Returns true when the decrypted sample breaks its codec's syntax in encrypted bytes. */
export type SampleCheck = (sample: Uint8Array, map: EncryptedMap) => boolean;

/** The check for a sample entry, or undefined when the codec has no cheap reliable one. */
export function checkForEntry(
  entry: SampleEntry | undefined,
  originalFormat: string,
): SampleCheck | undefined {
  if (!entry) return undefined;
  if (['avc1', 'avc2', 'avc3', 'avc4'].includes(originalFormat))
    return nalCheck(lengthSize(entry, 'avcC', 4));
  if (['hvc1', 'hev1', 'dvh1', 'dvhe'].includes(originalFormat))
    return nalCheck(lengthSize(entry, 'hvcC', 21));
  if (originalFormat === 'mp4a' && isRawDataBlockAac(entry)) return aacCheck;
  if (originalFormat === 'ac-3' || originalFormat === 'ec-3') return syncWordCheck;
  return undefined;
}

/** lengthSizeMinusOne + 1 from avcC (byte 4) or hvcC (byte 21); undefined when absent or odd. */
function lengthSize(entry: SampleEntry, type: string, at: number): number | undefined {
  const box: Box | undefined = entry.children.find((c) => c.type === type);
  const byte = box?.payload[at];
  if (byte === undefined) return undefined;
  const n = (byte & 3) + 1;
  return n === 3 ? undefined : n;
}

function readLength(s: Uint8Array, pos: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + s[pos + i]!;
  return v;
}

/**
 * {@link wasEncrypted} for positions visited in increasing order: amortized O(1) per call,
 * so walking every NAL unit of a sample costs O(NAL units + subsamples).
 */
class EncryptedCursor {
  private k = -1;
  private start = 0;
  private end = 0;
  private next = 0;

  constructor(
    private readonly map: EncryptedMap,
    private readonly size: number,
  ) {
    if (map.subCount === 0) this.end = size;
  }

  at(pos: number): boolean {
    const m = this.map;
    while (pos >= this.end && m.subCount > 0 && this.k + 1 < m.subCount) {
      this.k++;
      this.start = this.next + m.subsamples[2 * (m.subStart + this.k)]!;
      this.end = this.start + m.subsamples[2 * (m.subStart + this.k) + 1]!;
      this.next = this.end;
    }
    if (pos < this.start || pos >= this.end || pos >= this.size) return false;
    return inProtectedRange(m, pos - this.start, this.end - this.start);
  }

  any(from: number, to: number): boolean {
    let hit = false;
    for (let p = from; p < to; p++) hit = this.at(p) || hit;
    return hit;
  }
}

function nalCheck(n: number | undefined): SampleCheck | undefined {
  if (n === undefined) return undefined;
  return (s, map) => {
    const enc = new EncryptedCursor(map, s.length);
    let pos = 0;
    while (pos < s.length) {
      const end = Math.min(pos + n, s.length);
      const prefixEncrypted = enc.any(pos, end);
      const len = end - pos === n ? readLength(s, pos, n) : 0;
      // A walk that does not land on the sample end is noise only if the prefix was decrypted.
      if (len === 0 || end + len > s.length) return prefixEncrypted;
      if (enc.at(end) && (s[end]! & 0x80) !== 0) return true;
      const last = end + len - 1;
      if (enc.at(last) && s[last] === 0) return true;
      pos = end + len;
    }
    return false;
  };
}

const aacCheck: SampleCheck = (s, map) =>
  s.length >= 2 && s[0]! >> 5 === 7 && wasEncrypted(map, s.length, 0);

const syncWordCheck: SampleCheck = (s, map) =>
  s.length >= 2 &&
  (s[0] !== 0x0b || s[1] !== 0x77) &&
  wasEncrypted(map, s.length, 0) &&
  wasEncrypted(map, s.length, 1);

/** Audio object types whose access units are raw_data_block()s (ISO/IEC 14496-3 Table 1.1). */
const RAW_DATA_BLOCK_AOTS = new Set([1, 2, 3, 4, 5, 29]);

/** True when the entry's esds says MPEG-4/MPEG-2 AAC with a raw_data_block payload. */
function isRawDataBlockAac(entry: SampleEntry): boolean {
  const esds = entry.children.find((c) => c.type === 'esds');
  if (!esds) return false;
  const info = decoderInfo(esds.payload.subarray(4));
  if (!info) return false;
  if (info.objectType >= 0x66 && info.objectType <= 0x68) return true;
  return (
    info.objectType === 0x40 &&
    info.audioObjectType !== undefined &&
    RAW_DATA_BLOCK_AOTS.has(info.audioObjectType)
  );
}

/** Walks ES_Descriptor → DecoderConfigDescriptor → DecoderSpecificInfo (ISO/IEC 14496-1 §7.2.6). */
function decoderInfo(d: Uint8Array): { objectType: number; audioObjectType?: number } | undefined {
  const es = descriptor(d, 0, 0x03);
  if (!es) return undefined;
  const flags = d[es.body + 2] ?? 0;
  let at = es.body + 3 + (flags & 0x80 ? 2 : 0) + (flags & 0x20 ? 2 : 0);
  if (flags & 0x40) at += 1 + (d[at] ?? 0);
  const dc = descriptor(d, at, 0x04);
  if (!dc) return undefined;
  const objectType = d[dc.body] ?? 0;
  const dsi = descriptor(d, dc.body + 13, 0x05);
  if (!dsi || dsi.length < 1) return { objectType };
  let aot = (d[dsi.body] ?? 0) >> 3;
  if (aot === 31) aot = 32 + ((((d[dsi.body] ?? 0) & 7) << 3) | ((d[dsi.body + 1] ?? 0) >> 5));
  return { objectType, audioObjectType: aot };
}

/** A descriptor header at `at` with the expected tag: its body offset and length (expandable size). */
function descriptor(
  d: Uint8Array,
  at: number,
  tag: number,
): { body: number; length: number } | undefined {
  if (d[at] !== tag) return undefined;
  let length = 0;
  let p = at + 1;
  for (let i = 0; i < 4; i++) {
    const b = d[p++];
    if (b === undefined) return undefined;
    length = (length << 7) | (b & 0x7f);
    if ((b & 0x80) === 0) break;
  }
  return p + length <= d.length ? { body: p, length } : undefined;
}
