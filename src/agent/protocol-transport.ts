import { kwError } from '../errors/index.js';
import { decodeMessage } from '../protocol/codec.js';
import { keywarden } from '../protocol/generated/proto.js';

/** Posts a protocol message and returns the answer's bytes. Injectable for tests. */
export interface ProtocolTransport {
  post(url: string, body: Uint8Array, signal?: AbortSignal): Promise<Uint8Array>;
}

/** Options of {@link httpTransport}. */
export interface HttpTransportOptions {
  /** Per-request timeout, ms (default 15 s). */
  readonly timeoutMs?: number;
  /** Request filter: extra headers (auth tokens) per request. */
  readonly headers?: (url: string) => Record<string, string>;
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
 * HTTP POST with `Content-Type: application/x-protobuf` over global fetch, with a timeout
 * and the caller's AbortSignal. Network failures and non-200 answers are TRANSPORT_FAILED.
 */
export function httpTransport(opts: HttpTransportOptions = {}): ProtocolTransport {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const maxBytes = opts.maxResponseBytes ?? 1 << 20;
  return {
    async post(url, body, signal) {
      const timeout = AbortSignal.timeout(timeoutMs);
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-protobuf', ...opts.headers?.(url) },
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
      if (res.status !== 200) {
        throw kwError('TRANSPORT_FAILED', `POST ${url} answered HTTP ${res.status}`, {
          url,
          ...httpErrorDetails(res.status, bytes),
        });
      }
      if (bytes.length > maxBytes)
        throw kwError('PROTOCOL_ERROR', `the answer from ${url} is too large`, { url });
      return bytes;
    },
  };
}
