import { kwError } from '../../errors/index.js';
import type { CencScheme } from '../sample-crypto.js';

/** What kind of track is encrypted: decides subsamples and the pattern. */
export type ProtectedKind = 'video' | 'audio';

/** How one track is encrypted under a scheme: the values that go into 'tenc' and 'senc'. */
export interface TrackProtectionParams {
  readonly scheme: CencScheme;
  /** tenc version: 1 when the scheme has a pattern (ISO/IEC 23001-7 §8.2.1). */
  readonly tencVersion: 0 | 1;
  readonly cryptByteBlock: number;
  readonly skipByteBlock: number;
  /** 0 (constant IV, cbcs), 8 or 16. */
  readonly perSampleIvSize: 0 | 8 | 16;
  /** Video: one subsample per NAL unit. Audio: full-sample encryption. */
  readonly subsamples: boolean;
  /**
   * Protected ranges are whole 16-byte blocks, the remainder moved into the clear bytes in
   * front: §10.2 ('cbc1') and §10.3 ('cens') require it; for 'cenc' CMAF (ISO/IEC 23000-19
   * §8.2.2.2) does, and shaka-packager applies it too. 'cbcs' starts the protected range
   * right after the slice header and leaves its trailing partial block clear (§10.4).
   */
  readonly alignProtected: boolean;
}

/** The pattern shaka-packager and Apple use for video: 1 encrypted block in 10 (§10.4.2). */
export const VIDEO_PATTERN = { crypt: 1, skip: 9 } as const;

/** True for the pattern schemes (§9.6). */
export function usesPattern(scheme: CencScheme): boolean {
  return scheme === 'cbcs' || scheme === 'cens';
}

/** True for the AES-CBC schemes, whose IVs are a full 16-byte block (§9.1). */
export function isCbc(scheme: CencScheme): boolean {
  return scheme === 'cbc1' || scheme === 'cbcs';
}

/**
 * The per-sample IV size for a scheme given the user's --iv length (undefined: none given).
 * cenc/cens default to 8 bytes (§9.1 allows 8 with a 64-bit block counter); CBC schemes need
 * 16; cbcs uses a 16-byte constant IV in 'tenc' and no per-sample IVs (§10.4.1).
 */
export function ivSizeFor(scheme: CencScheme, userIvLength?: number): 0 | 8 | 16 {
  if (userIvLength !== undefined && userIvLength !== 8 && userIvLength !== 16) {
    throw kwError('MEDIA_PACKAGE_BAD_IV', `--iv has ${userIvLength} bytes; give 8 or 16`, {
      length: userIvLength,
    });
  }
  if (isCbc(scheme) && userIvLength === 8) {
    throw kwError(
      'MEDIA_PACKAGE_BAD_IV',
      `'${scheme}' is AES-CBC and needs a 16-byte --iv (ISO/IEC 23001-7 §9.1)`,
      {
        scheme,
        length: userIvLength,
      },
    );
  }
  if (scheme === 'cbcs') return 0;
  if (scheme === 'cbc1') return 16;
  return userIvLength === 16 ? 16 : 8;
}

/**
 * The protection of one track. Video gets subsamples and, for the pattern schemes, the 1:9
 * pattern; audio is full-sample encrypted with no pattern (0:0 means every whole block, as
 * shaka-packager does: its --crypt_byte_block applies to video only).
 */
export function trackProtection(
  scheme: CencScheme,
  kind: ProtectedKind,
  userIvLength?: number,
): TrackProtectionParams {
  const pattern = usesPattern(scheme) && kind === 'video' ? VIDEO_PATTERN : { crypt: 0, skip: 0 };
  return {
    scheme,
    tencVersion: usesPattern(scheme) ? 1 : 0,
    cryptByteBlock: pattern.crypt,
    skipByteBlock: pattern.skip,
    perSampleIvSize: ivSizeFor(scheme, userIvLength),
    subsamples: kind === 'video',
    alignProtected: kind === 'video' && scheme !== 'cbcs',
  };
}
