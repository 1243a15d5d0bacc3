import { randomBytes, type X509Certificate } from 'node:crypto';
import type { NonceRegistry } from '../crypto/replay-guard.js';
import {
  MessageType,
  NONCE_BYTES,
  signMessageWith,
  verifyMessage,
  type VerifiedMessage,
} from '../protocol/envelope.js';
import type { DeviceCredentials } from './device-credentials.js';
import { httpTransport, type ProtocolTransport } from './protocol-transport.js';

/** What a device needs to talk to a head-end service. */
export interface ServiceClientOptions {
  /** Device key and certificate chain. */
  readonly credentials: DeviceCredentials;
  /** The operator root the server's chain must lead to. */
  readonly trustedRoot: Uint8Array | X509Certificate;
  /** HTTP by default. */
  readonly transport?: ProtocolTransport;
  /** Clock (default Date.now). */
  readonly now?: () => number;
  /** Replay window for server answers. */
  readonly replayGuard?: NonceRegistry;
}

/** A verified answer and the bytes it came in (kept, e.g., to store a license as signed). */
export interface SignedAnswer extends VerifiedMessage {
  readonly raw: Uint8Array;
}

/**
 * One signed round trip: sign `payload` as `type` with the device key, POST it, verify the
 * answer as `responseType` against the operator root and bound to our request nonce.
 */
export async function signedExchange(
  opts: ServiceClientOptions,
  url: string,
  type: MessageType,
  payload: Uint8Array,
  responseType: MessageType,
  signal?: AbortSignal,
): Promise<SignedAnswer> {
  const now = (): number => opts.now?.() ?? Date.now();
  const nonce = randomBytes(NONCE_BYTES);
  const body = await signMessageWith(type, payload, opts.credentials.signer, {
    nonce,
    nowMs: now(),
  });
  const answer = await (opts.transport ?? httpTransport()).post(url, body, signal);
  const verified = verifyMessage(answer, responseType, {
    trustedRoot: opts.trustedRoot,
    nowMs: now(),
    expectedInReplyTo: nonce,
    replayGuard: opts.replayGuard,
  });
  return { ...verified, raw: answer };
}
