import { expect } from 'vitest';
import { keywarden } from '../../../../src/protocol/generated/proto.js';
import type { DeviceFacts } from '../../../../src/agent/policy/index.js';

export const v1 = keywarden.v1;
export const SEC = 1000;
export const MIN = 60 * SEC;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;
/** Issue time of every fixture license. */
export const T0 = Date.UTC(2025, 5, 1, 8);

/** The device: software key vault, application "tv.app". */
export const DEVICE: DeviceFacts = {
  securityLevel: v1.SecurityLevel.SECURITY_LEVEL_SOFTWARE,
  applicationId: 'tv.app',
};

/** A playable offline license issued at T0 with `policy` on top of "no limits". */
export function license(
  policy: keywarden.v1.IPolicy = {},
  extra: keywarden.v1.ILicense = {},
): keywarden.v1.ILicense {
  return {
    id: 'lic-1',
    type: v1.License.LicenseType.OFFLINE,
    policy: { canPlay: true, ...policy },
    keys: [{ kid: Buffer.alloc(16, 0xab) }],
    contentId: 'movie-1',
    deviceId: 'dev-1',
    serverTimeMs: T0,
    issuedAtMs: T0,
    expiresAtMs: 0,
    ...extra,
  };
}

/** A subscription root license `id`, valid for `validS` seconds from `issuedAtMs`. */
export function root(id: string, validS: number, issuedAtMs = T0): keywarden.v1.ILicense {
  return license(
    { licenseDurationS: validS, canRenew: true, chain: { isRoot: true } },
    { id, keys: [], issuedAtMs, serverTimeMs: issuedAtMs },
  );
}

/** A leaf license naming `roots`. */
export function leaf(roots: string[], policy: keywarden.v1.IPolicy = {}): keywarden.v1.ILicense {
  return license({ ...policy, chain: { isRoot: false, rootLicenseIds: roots } }, { id: 'leaf-1' });
}

/** Matches a coded error. */
export const coded = (code: string): Error => expect.objectContaining({ code }) as Error;
