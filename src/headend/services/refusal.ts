import { isKeywardenError, kwError, type KeywardenError } from '../../errors/index.js';
import type { keywarden } from '../../protocol/generated/proto.js';

/** Details a refusal may carry onto the wire (LicenseError fields). */
export interface RefusalDetails {
  readonly customData?: string;
  readonly domainServerUrl?: string;
  readonly serviceId?: string;
  readonly accountId?: string;
}

/** A business refusal: a catalogued error whose details go into a signed LicenseError. */
export function refuse(
  code: Parameters<typeof kwError>[0],
  message: string,
  details: RefusalDetails = {},
): KeywardenError {
  return kwError(code, message, { ...details });
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** The signed LicenseError for a refusal. */
export function licenseErrorOf(err: KeywardenError): keywarden.v1.ILicenseError {
  return {
    code: err.number,
    message: err.message,
    customData: text(err.details.customData),
    domainServerUrl: text(err.details.domainServerUrl),
    serviceId: text(err.details.serviceId),
    accountId: text(err.details.accountId),
  };
}

/**
 * Codes that are answered with a signed refusal once the request is authenticated. Anything
 * else (a bug, a failed database) propagates and the HTTP layer answers 500.
 */
const SIGNED_REFUSALS = new Set<string>([
  'SERVICE_SPECIFIC',
  'DOMAIN_FULL',
  'NOT_A_DOMAIN_MEMBER',
  'UNKNOWN_DOMAIN_ACCOUNT',
  'DEVICE_REVOKED',
  'AGENT_VERSION_TOO_OLD',
  'HEADEND_RATE_LIMITED',
  'UNKNOWN_KEY',
  'UNKNOWN_DEVICE',
  'DEVICE_NOT_ENTITLED',
  'HEADEND_BAD_REQUEST',
  'DECODE_FAILED',
  'LICENSE_WRONG_DEVICE',
  'LICENSE_RELEASED',
  'LICENSE_REVOKED',
]);

/** True when `err` becomes a signed refusal rather than an HTTP error. */
export function isSignedRefusal(err: unknown): err is KeywardenError {
  return isKeywardenError(err) && SIGNED_REFUSALS.has(err.code);
}
