import { randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { kwError } from '../errors/index.js';
import { parseCertificate, verifyCertificateChain } from '../crypto/cert-chain.js';
import { publicKeyFromSpki, signP256, verifyP256 } from '../crypto/ecdsa.js';
import type { NonceRegistry } from '../crypto/replay-guard.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { keywarden } from './generated/proto.js';

const v1 = keywarden.v1;

/** The message kinds (re-exported so callers need not reach into generated code). */
export const MessageType = v1.MessageType;
/** A message kind. */
export type MessageType = keywarden.v1.MessageType;

/** Length of an envelope nonce (bytes). */
export const NONCE_BYTES = 16;
/** Default accepted clock difference between signer and verifier: 5 minutes. */
export const DEFAULT_MAX_SKEW_MS = 5 * 60_000;

/** Signs with a private key held in memory (head-end, tests). */
export interface KeySigner {
  readonly privateKey: KeyObject;
  /** Signer chain, DER, leaf first; empty for a provisioning proof of possession. */
  readonly chain: readonly Uint8Array[];
}

/** Signs through a callback: a key vault or hardware backend holds the key. */
export interface CallbackSigner {
  /** ECDSA P-256 / SHA-256, DER signature over `data`. */
  sign(data: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Signer chain, DER, leaf first; empty for a provisioning proof of possession. */
  readonly chain: readonly Uint8Array[];
}

/** Freshness fields the signer may set (tests, responses). */
export interface SignOptions {
  /** In a response: the request's nonce. */
  readonly inReplyTo?: Uint8Array;
  /** Clock, ms since the epoch (default Date.now()). */
  readonly nowMs?: number;
  /** Fixed nonce (tests only; default 16 random bytes). */
  readonly nonce?: Uint8Array;
}

function buildBody(type: MessageType, payload: Uint8Array, opts: SignOptions): Uint8Array {
  return encodeMessage(
    v1.SignedBody,
    v1.SignedBody.create({
      type,
      nonce: opts.nonce ?? randomBytes(NONCE_BYTES),
      timestampMs: opts.nowMs ?? Date.now(),
      payload,
      inReplyTo: opts.inReplyTo ?? new Uint8Array(0),
    }),
  );
}

function buildEnvelope(
  body: Uint8Array,
  signature: Uint8Array,
  chain: readonly Uint8Array[],
): Uint8Array {
  return encodeMessage(
    v1.SignedMessage,
    v1.SignedMessage.create({ body, signature, certChain: [...chain] }),
  );
}

/** Wraps `payload` (a serialized message of kind `type`) in a signed envelope. */
export function signMessage(
  type: MessageType,
  payload: Uint8Array,
  signer: KeySigner,
  opts: SignOptions = {},
): Uint8Array {
  const body = buildBody(type, payload, opts);
  return buildEnvelope(body, signP256(signer.privateKey, body), signer.chain);
}

/** {@link signMessage} for signers whose key lives behind a callback (key vaults). */
export async function signMessageWith(
  type: MessageType,
  payload: Uint8Array,
  signer: CallbackSigner,
  opts: SignOptions = {},
): Promise<Uint8Array> {
  const body = buildBody(type, payload, opts);
  return buildEnvelope(body, await signer.sign(body), signer.chain);
}

/** How to verify an envelope. */
export interface VerifyOptions {
  /** The operator root every chain must lead to (DER or parsed). */
  readonly trustedRoot?: Uint8Array | X509Certificate;
  /** Clock, ms since the epoch (default Date.now()). */
  readonly nowMs?: number;
  /** Replay window; when absent, nonces are not checked (the caller must then bind freshness). */
  readonly replayGuard?: NonceRegistry;
  /** Accepted |signer clock - our clock|, ms (default 5 min). */
  readonly maxSkewMs?: number;
  /** A response must answer this request nonce. */
  readonly expectedInReplyTo?: Uint8Array;
  /**
   * Provisioning only: the message carries no chain and is signed by the key its own payload
   * holds (proof of possession). Returns that key's SPKI DER from the decoded payload.
   */
  readonly proofOfPossession?: (payload: Uint8Array) => Uint8Array;
}

/** A verified envelope. */
export interface VerifiedMessage {
  /** The serialized inner message. */
  readonly payload: Uint8Array;
  /** The signer's certificate (absent for proof-of-possession messages). */
  readonly signerCert: X509Certificate | undefined;
  /** The verified path, leaf first, root excluded (empty for proof of possession). */
  readonly chain: readonly X509Certificate[];
  /** The key that verified the signature. */
  readonly signerKey: KeyObject;
  /** The envelope nonce (responses echo it in `inReplyTo`). */
  readonly nonce: Uint8Array;
  /** Signer's timestamp, ms since the epoch. */
  readonly timestamp: number;
  /** The request nonce this message answers (empty in requests). */
  readonly inReplyTo: Uint8Array;
}

interface SignerIdentity {
  readonly key: KeyObject;
  readonly cert: X509Certificate | undefined;
  readonly chain: readonly X509Certificate[];
}

function resolveSigner(
  envelope: keywarden.v1.SignedMessage,
  body: keywarden.v1.SignedBody,
  opts: VerifyOptions,
  nowMs: number,
): SignerIdentity {
  if (opts.proofOfPossession) {
    if (envelope.certChain.length > 0) {
      throw kwError('PROTOCOL_ERROR', 'a proof-of-possession message must not carry a chain');
    }
    return {
      key: publicKeyFromSpki(opts.proofOfPossession(body.payload)),
      cert: undefined,
      chain: [],
    };
  }
  if (opts.trustedRoot === undefined) {
    throw kwError('CERT_UNTRUSTED_ROOT', 'no operator root is configured to verify against');
  }
  const { leaf, path } = verifyCertificateChain(
    envelope.certChain,
    parseCertificate(opts.trustedRoot),
    nowMs,
  );
  return { key: leaf.publicKey, cert: leaf, chain: path };
}

function checkFreshness(body: keywarden.v1.SignedBody, opts: VerifyOptions, nowMs: number): void {
  const maxSkew = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const ts = Number(body.timestampMs);
  if (!Number.isFinite(ts) || Math.abs(ts - nowMs) > maxSkew) {
    throw kwError('MESSAGE_STALE', 'the message timestamp is outside the accepted clock skew', {
      timestampMs: ts,
      nowMs,
      maxSkewMs: maxSkew,
    });
  }
  if (
    opts.expectedInReplyTo &&
    !Buffer.from(body.inReplyTo).equals(Buffer.from(opts.expectedInReplyTo))
  ) {
    throw kwError('NONCE_REPLAYED', 'the response does not answer this request');
  }
  opts.replayGuard?.checkAndRemember(body.nonce, ts, nowMs);
}

/**
 * Decodes an envelope and its signed body (nothing verified yet), refusing a nonce of the
 * wrong size: the first step of every verifier (this module's, the fleet's, the head-end's
 * chain-caching one).
 */
export function decodeEnvelope(bytes: Uint8Array): {
  envelope: keywarden.v1.SignedMessage;
  body: keywarden.v1.SignedBody;
} {
  const envelope = decodeMessage(v1.SignedMessage, bytes, 'SignedMessage');
  const body = decodeMessage(v1.SignedBody, envelope.body, 'SignedBody');
  if (body.nonce.length !== NONCE_BYTES) {
    throw kwError(
      'DECODE_FAILED',
      `the envelope nonce is ${body.nonce.length} bytes, not ${NONCE_BYTES}`,
    );
  }
  return { envelope, body };
}

/** MESSAGE_TYPE_MISMATCH unless the signed body holds `expected`. */
export function checkMessageType(body: keywarden.v1.SignedBody, expected: MessageType): void {
  if (body.type !== expected) {
    throw kwError(
      'MESSAGE_TYPE_MISMATCH',
      `expected ${MessageType[expected]}, got ${String(MessageType[body.type] ?? body.type)}`,
      {
        expected,
        actual: body.type,
      },
    );
  }
}

/**
 * Verifies a signed envelope, in this order: decode; signer chain up to the operator root
 * (or proof of possession); signature over the body bytes; message type; timestamp skew;
 * reply binding; nonce freshness. The nonce is remembered only once everything else holds,
 * so forged messages cannot fill the replay window. Any failure is a coded KeywardenError.
 */
export function verifyMessage(
  bytes: Uint8Array,
  expectedType: MessageType,
  opts: VerifyOptions,
): VerifiedMessage {
  const nowMs = opts.nowMs ?? Date.now();
  const { envelope, body } = decodeEnvelope(bytes);
  const signer = resolveSigner(envelope, body, opts, nowMs);
  if (!verifyP256(signer.key, envelope.body, envelope.signature)) {
    throw kwError('SIGNATURE_INVALID', 'the message signature does not verify');
  }
  checkMessageType(body, expectedType);
  checkFreshness(body, opts, nowMs);
  return {
    payload: body.payload,
    signerCert: signer.cert,
    chain: signer.chain,
    signerKey: signer.key,
    nonce: body.nonce,
    timestamp: Number(body.timestampMs),
    inReplyTo: body.inReplyTo,
  };
}

/** Reads the type and nonce of an envelope without verifying it (routing, logging only). */
export function peekMessageType(bytes: Uint8Array): MessageType {
  const envelope = decodeMessage(v1.SignedMessage, bytes, 'SignedMessage');
  return decodeMessage(v1.SignedBody, envelope.body, 'SignedBody').type;
}
