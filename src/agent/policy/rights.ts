import { kwError, type ErrorCode } from '../../errors/index.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { DeviceFacts } from './types.js';

const v1 = keywarden.v1;

/** The rights a license grants. */
export interface LicenseRights {
  /** policy.can_play. */
  readonly play: boolean;
  /** policy.can_persist, and the license is not of type STREAMING. */
  readonly persist: boolean;
  /** policy.can_renew. */
  readonly renew: boolean;
}

/** A right {@link requireRight} checks. */
export type Right = keyof LicenseRights;

const REFUSALS: Record<Right, { code: ErrorCode; message: string }> = {
  play: { code: 'PLAYBACK_NOT_ALLOWED', message: 'the license does not grant playback' },
  persist: { code: 'CANNOT_PERSIST', message: 'the license may not be stored offline' },
  renew: { code: 'CANNOT_RENEW', message: 'the license may not be renewed' },
};

/** Reads the rights of `license`; an absent policy grants nothing. */
export function licenseRights(license: keywarden.v1.ILicense): LicenseRights {
  const p = license.policy ?? {};
  return {
    play: p.canPlay === true,
    persist: p.canPersist === true && license.type !== v1.License.LicenseType.STREAMING,
    renew: p.canRenew === true,
  };
}

/**
 * Throws the catalogue error when `license` lacks `right`: PLAYBACK_NOT_ALLOWED,
 * CANNOT_PERSIST (the store calls it before writing), CANNOT_RENEW (before a renewal).
 */
export function requireRight(license: keywarden.v1.ILicense, right: Right): void {
  if (licenseRights(license)[right]) return;
  const { code, message } = REFUSALS[right];
  throw kwError(code, message, { licenseId: license.id, right });
}

/** Names of the protocol's security levels, for messages and summaries. */
export function securityLevelName(level: keywarden.v1.SecurityLevel | null | undefined): string {
  switch (level) {
    case v1.SecurityLevel.SECURITY_LEVEL_SOFTWARE:
      return 'software';
    case v1.SecurityLevel.SECURITY_LEVEL_TEE:
      return 'tee';
    case v1.SecurityLevel.SECURITY_LEVEL_HARDWARE:
      return 'hardware';
    default:
      return 'unspecified';
  }
}

/** A refusal by {@link checkDevice}. */
export interface DeviceRefusal {
  /** The rule. */
  readonly rule: 'security-level' | 'application';
  /** SECURITY_LEVEL_TOO_LOW or APPLICATION_NOT_ALLOWED. */
  readonly code: ErrorCode;
  /** Why. */
  readonly message: string;
}

/**
 * Checks the device's security level against policy.min_security_level (UNSPECIFIED = any)
 * and the application against policy.allowed_application_ids (empty = any).
 */
export function checkDevice(
  license: keywarden.v1.ILicense,
  device: DeviceFacts,
): readonly DeviceRefusal[] {
  const p = license.policy ?? {};
  const out: DeviceRefusal[] = [];
  const min = p.minSecurityLevel ?? v1.SecurityLevel.SECURITY_LEVEL_UNSPECIFIED;
  if (min !== v1.SecurityLevel.SECURITY_LEVEL_UNSPECIFIED && device.securityLevel < min)
    out.push({
      rule: 'security-level',
      code: 'SECURITY_LEVEL_TOO_LOW',
      message: `the license needs security level ${securityLevelName(min)}, the device has ${securityLevelName(device.securityLevel)}`,
    });
  const apps = p.allowedApplicationIds ?? [];
  if (apps.length > 0 && !apps.includes(device.applicationId ?? ''))
    out.push({
      rule: 'application',
      code: 'APPLICATION_NOT_ALLOWED',
      message: `application "${device.applicationId ?? ''}" may not use this license`,
    });
  return out;
}
