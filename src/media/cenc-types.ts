import type { CencScheme } from './sample-crypto.js';

/** The scheme_type values of 'schm' we handle. 'piff' is PIFF 1.1 (AES-CTR, like cenc). */
export type SchemeType = CencScheme | 'piff';

/** The AES mode behind a scheme_type. */
export function schemeAlgorithm(scheme: SchemeType): CencScheme {
  return scheme === 'piff' ? 'cenc' : scheme;
}

/** Default encryption parameters of a track: 'tenc' (ISO/IEC 23001-7 §8.2) or PIFF's uuid box. */
export interface TrackEncryption {
  /** tenc default_isProtected: 0 = clear, 1 = protected. */
  readonly isProtected: number;
  /** default_Per_Sample_IV_Size: 0 (constant IV), 8 or 16. */
  readonly perSampleIvSize: number;
  /** default_KID, 16 bytes. */
  readonly kid: Uint8Array;
  /** default_crypt_byte_block (tenc v1), 0 otherwise. */
  readonly cryptByteBlock: number;
  /** default_skip_byte_block (tenc v1), 0 otherwise. */
  readonly skipByteBlock: number;
  /** default_constant_IV when perSampleIvSize is 0. */
  readonly constantIv?: Uint8Array;
}

/** One entry of a 'seig' sample group (§6): overrides TrackEncryption for its samples. */
export type SampleGroupEncryption = TrackEncryption;

/** BytesOfClearData / BytesOfProtectedData (§7.2). */
export interface Subsample {
  readonly clear: number;
  readonly protected: number;
}

/** The per-sample auxiliary information of 'senc' (§7.2) or PIFF's sample encryption box. */
export interface SampleEncryptionInfo {
  /** Empty when the track uses a constant IV. */
  readonly iv: Uint8Array;
  /** Empty for full-sample encryption. */
  readonly subsamples: readonly Subsample[];
}

/** A 'pssh' box (§8.1). */
export interface ProtectionSystemHeader {
  readonly version: number;
  /** 16 bytes. */
  readonly systemId: Uint8Array;
  /** KIDs of a version 1 box. */
  readonly kids: readonly Uint8Array[];
  readonly data: Uint8Array;
}

/** System IDs we recognise (lower-case UUID strings). */
export const SYSTEM_IDS = {
  /** W3C "Common PSSH box format" (https://www.w3.org/TR/eme-initdata-cenc/). */
  common: '1077efec-c0b2-4d02-ace3-3c1e52e2fb4b',
  /** keywarden's own system: protobuf `PsshData` (proto/pssh.proto). */
  keywarden: '4b574152-4445-4e00-8d2e-6b6579776172',
  widevine: 'edef8ba9-79d6-4ace-a3c8-27dcd51d21ed',
  playready: '9a04f079-9840-4286-ab92-e65be0885f95',
  fairplay: '94ce86fb-07ff-4f43-adb8-93d2fa968ca2',
  marlin: '5e629af5-38da-4063-8977-97ffbd9902d4',
  clearkeyDash: 'e2719d58-a985-b3c9-781a-b030af78d30e',
} as const;

/** PIFF 1.1/1.3 extended types (Protected Interoperable File Format §5.3). */
export const PIFF_UUIDS = {
  /** PIFF Track Encryption Box (in schi). */
  trackEncryption: '8974dbce7be74c5184f97148f9882554',
  /** PIFF Sample Encryption Box (in traf). */
  sampleEncryption: 'a2394f525a9b4f14a2446c427c648df4',
  /** PIFF Protection System Specific Header Box (in moov). */
  protectionSystem: 'd08a4f1810f34a82b6c832d8aba183d3',
} as const;
