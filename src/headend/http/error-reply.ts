import {
  isKeywardenError,
  kwError,
  type ErrorCode,
  type KeywardenError,
} from '../../errors/index.js';
import { keywarden } from '../../protocol/generated/proto.js';

/** HTTP status of each error the transport answers with an unsigned ErrorReply. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  HEADEND_BAD_REQUEST: 400,
  DECODE_FAILED: 400,
  PROTOCOL_ERROR: 400,
  MESSAGE_TYPE_MISMATCH: 400,
  SIGNATURE_INVALID: 403,
  CERT_CHAIN_INVALID: 403,
  CERT_UNTRUSTED_ROOT: 403,
  CERT_EXPIRED: 403,
  DEVICE_REVOKED: 403,
  UNKNOWN_DEVICE: 403,
  MESSAGE_STALE: 409,
  NONCE_REPLAYED: 409,
  HEADEND_NOT_FOUND: 404,
  HEADEND_TIMEOUT: 408,
  HEADEND_BODY_TOO_LARGE: 413,
  HEADEND_UNSUPPORTED_MEDIA_TYPE: 415,
  HEADEND_RATE_LIMITED: 429,
};

/** The coded error for anything thrown while answering (unknown throws become 7416). */
export function asCoded(err: unknown): KeywardenError {
  if (isKeywardenError(err)) return err;
  return kwError('HEADEND_INTERNAL', 'internal error', {}, err);
}

/** HTTP status for a coded error: 4xx for the client's faults, 500 for ours. */
export function statusOf(err: KeywardenError): number {
  return STATUS[err.code] ?? (err.code === 'STORE_FAILED' ? 503 : 500);
}

/** The unsigned ErrorReply body (docs/protocol.md "Errors"); internal details never leak. */
export function errorReplyBody(err: KeywardenError, status: number): Uint8Array {
  const message = status >= 500 ? 'the head-end failed; see its log' : err.message;
  return keywarden.v1.ErrorReply.encode({ code: err.number, name: err.code, message }).finish();
}
