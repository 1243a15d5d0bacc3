import { kwError, type KeywardenError } from '../errors/index.js';
import { decodeMessage } from '../protocol/codec.js';
import { keywarden } from '../protocol/generated/proto.js';
import { codeForNumber } from './wire-errors.js';

/** Posts a protocol message and returns the answer's bytes. Injectable for tests. */
export interface ProtocolTransport {
  post(url: string, body: Uint8Array, signal?: AbortSignal): Promise<Uint8Array>;
}

/** Options of {@link httpTransport}. */
export interface HttpTransportOptions {
  /** Per-request timeout, ms (default 15 s). */
  readonly timeoutMs?: number;
  /** Request filter: extra headers (auth tokens) per request; may be async (token refresh). */
  readonly headers?: (url: string) => Record<string, string> | Promise<Record<string, string>>;
  /** Largest answer accepted, bytes (default 1 MiB). */
  readonly maxResponseBytes?: number;
}

/** Describes an HTTP error answer, reading its unsigned ErrorReply when there is one. */
function httpErrorDetails(status: number, body: Uint8Array): Record<string, unknown> {
  try {
    const reply = decodeMessage(keywarden.v1.ErrorReply, body, 'ErrorReply');
    return { status, code: reply.code, name: reply.name, serverMessage: reply.message };
  } catch {
    // Not an ErrorReply (a proxy's HTML page, say): the status is all we can report.
    return { status };
  }
}

/**
 * The error for a non-200 answer. A 4xx whose unsigned ErrorReply names a catalogued code
 * (403 DEVICE_REVOKED, CERT_EXPIRED...) is raised with that code, so the user is told what
 * happened; `details.unsigned` marks that no signature vouches for it. Anything else is
 * TRANSPORT_FAILED with the status and whatever the reply said.
 */
function httpRefusal(url: string, status: number, body: Uint8Array): KeywardenError {
  const details: Record<string, unknown> = { url, ...httpErrorDetails(status, body) };
  const code = typeof details.code === 'number' ? codeForNumber(details.code) : undefined;
  if (code && status >= 400 && status < 500) {
    const said = typeof details.serverMessage === 'string' ? `: ${details.serverMessage}` : '';
    return kwError(code, `POST ${url} refused (HTTP ${status}, unsigned)${said}`, {
      ...details,
      unsigned: true,
    });
  }
  return kwError('TRANSPORT_FAILED', `POST ${url} answered HTTP ${status}`, details);
}

/**
 * HTTP POST with `Content-Type: application/x-protobuf` over global fetch, with a timeout
 * and the caller's AbortSignal. Network failures and 5xx answers are TRANSPORT_FAILED; a 4xx
 * carrying a catalogued code is raised with that code (see {@link httpRefusal}).
 */
export function httpTransport(opts: HttpTransportOptions = {}): ProtocolTransport {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const maxBytes = opts.maxResponseBytes ?? 1 << 20;
  return {
    async post(url, body, signal) {
      const timeout = AbortSignal.timeout(timeoutMs);
      let res: Response;
      try {
        const extra = await opts.headers?.(url);
        res = await fetch(url, {
          method: 'POST',
          headers: { ...extra, 'content-type': 'application/x-protobuf' },
          body,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
      } catch (err) {
        throw kwError(
          'TRANSPORT_FAILED',
          `POST ${url} failed: ${(err as Error).message}`,
          { url },
          err,
        );
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 200) throw httpRefusal(url, res.status, bytes);
      if (bytes.length > maxBytes)
        throw kwError('PROTOCOL_ERROR', `the answer from ${url} is too large`, { url });
      return bytes;
    },
  };
}
