import { ERRORS, kwError, type ErrorCode, type KeywardenError } from '../errors/index.js';

const BY_NUMBER = new Map<number, ErrorCode>(
  (Object.entries(ERRORS) as [ErrorCode, { number: number }][]).map(([code, spec]) => [
    spec.number,
    code,
  ]),
);

/** A refusal as the wire carries it (LicenseError, ProvisioningError). */
export interface WireError {
  code?: number | null;
  message?: string | null;
  customData?: string | null;
  domainServerUrl?: string | null;
  serviceId?: string | null;
  accountId?: string | null;
  minAgentVersion?: string | null;
  retryAfterMs?: number | null;
  updateUrl?: string | null;
}

/** The catalogue code for a wire number, if keywarden knows it. */
export function codeForNumber(n: number): ErrorCode | undefined {
  return BY_NUMBER.get(n);
}

/**
 * Turns a server refusal into a KeywardenError with the server's catalogue code (6007 with
 * its custom data, 6041 with the domain server URL, ...). Unknown numbers become `fallback`
 * with the number in the details. Empty fields are left out of the details.
 */
export function errorFromWire(wire: WireError, fallback: ErrorCode, what: string): KeywardenError {
  const number = wire.code ?? 0;
  const code = codeForNumber(number) ?? fallback;
  const details: Record<string, unknown> = { serverCode: number };
  for (const key of [
    'customData',
    'domainServerUrl',
    'serviceId',
    'accountId',
    'minAgentVersion',
    'updateUrl',
  ] as const) {
    const v = wire[key];
    if (v) details[key] = v;
  }
  if (wire.retryAfterMs) details.retryAfterMs = wire.retryAfterMs;
  return kwError(code, `${what}: ${wire.message || `server error ${number}`}`, details);
}

/**
 * The server's catalogue code of an HTTP-level refusal: a 4xx whose (unsigned) ErrorReply
 * named it, e.g. 403 DEVICE_REVOKED or CERT_EXPIRED (the transport raises it with that code
 * and `details.unsigned`). Undefined for any other error, signed refusals included.
 */
export function httpRefusalCode(err: KeywardenError): ErrorCode | undefined {
  const { status, unsigned } = err.details;
  if (unsigned !== true || typeof status !== 'number' || status < 400 || status >= 500)
    return undefined;
  return err.code;
}
