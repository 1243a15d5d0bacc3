import { isKeywardenError, kwError } from '../errors/index.js';
import { DEFAULT_MAX_FLEET_PAYLOAD_BYTES } from './verify.js';

/** Path the head-end serves the current signed RevocationList on. */
export const REVOCATIONS_PATH = '/v1/fleet/revocations';

/** Options of {@link pullRevocationList}. */
export interface PullOptions {
  /** Largest body accepted; default 1 MiB. */
  readonly maxBytes?: number;
  /** Whole-request timeout, ms; default 10 s. */
  readonly timeoutMs?: number;
  /** Cancels the request. */
  readonly signal?: AbortSignal;
  /** fetch implementation (tests, or one with a TLS dispatcher); default globalThis.fetch. */
  readonly fetch?: typeof globalThis.fetch;
}

/**
 * GETs the signed RevocationList envelope (application/x-protobuf) from the head-end and
 * returns its bytes, unverified: the caller verifies it like an MQTT delivery. Returns
 * undefined when the head-end has no list yet (404 or 204). Errors: TRANSPORT_FAILED
 * (network, timeout, other status), DECODE_FAILED (body above the limit).
 */
export async function pullRevocationList(
  url: string | URL,
  opts: PullOptions = {},
): Promise<Uint8Array | undefined> {
  const limit = opts.maxBytes ?? DEFAULT_MAX_FLEET_PAYLOAD_BYTES;
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 10_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const doFetch = opts.fetch ?? globalThis.fetch;
  let res: Response;
  try {
    res = await doFetch(url, {
      method: 'GET',
      headers: { accept: 'application/x-protobuf' },
      signal,
      redirect: 'error',
    });
  } catch (err) {
    throw kwError('TRANSPORT_FAILED', `GET ${String(url)} failed`, { url: String(url) }, err);
  }
  if (res.status === 404 || res.status === 204) {
    await res.body?.cancel();
    return undefined;
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw kwError('TRANSPORT_FAILED', `GET ${String(url)} answered ${res.status}`, {
      url: String(url),
      status: res.status,
    });
  }
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > limit) {
    await res.body?.cancel();
    throw kwError('FLEET_PAYLOAD_TOO_LARGE', 'the revocation list is above the size limit', {
      size: declared,
      limit,
    });
  }
  return readLimited(res, limit, url);
}

async function readLimited(res: Response, limit: number, url: string | URL): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limit) {
        await reader.cancel();
        throw kwError('FLEET_PAYLOAD_TOO_LARGE', 'the revocation list is above the size limit', {
          limit,
        });
      }
      chunks.push(value);
    }
  } catch (err) {
    if (isKeywardenError(err)) throw err;
    throw kwError('TRANSPORT_FAILED', `reading ${String(url)} failed`, { url: String(url) }, err);
  }
  return Uint8Array.from(Buffer.concat(chunks));
}
