import type { X509Certificate } from 'node:crypto';
import { verifyP256 } from '../crypto/ecdsa.js';
import { isKeywardenError, kwError, type ErrorCode, KeywardenError } from '../errors/index.js';
import { decodeMessage, MAX_MESSAGE_BYTES } from '../protocol/codec.js';
import {
  checkMessageType,
  decodeEnvelope,
  DEFAULT_MAX_SKEW_MS,
  MessageType,
} from '../protocol/envelope.js';
import { keywarden } from '../protocol/generated/proto.js';
import { VerifiedChainCache } from '../crypto/chain-cache.js';
import type { CommandNonceSet } from './state.js';

const v1 = keywarden.v1;

/** Subject CN of the fleet publisher certificate (src/headend/pki/operator-pki.ts). */
export const FLEET_PUBLISHER_NAME = 'keywarden fleet publisher';
/** Largest list or command accepted, checked before decoding: 1 MiB. */
export const DEFAULT_MAX_FLEET_PAYLOAD_BYTES = MAX_MESSAGE_BYTES;
/** Longest a command may live (expires_at − signed time): 30 days (the head-end default TTL is 7). */
export const DEFAULT_MAX_COMMAND_LIFETIME_MS = 30 * 86_400_000;

/** How fleet messages are verified. */
export interface FleetVerifierOptions {
  /** The operator root (DER or parsed). */
  readonly trustedRoot: Uint8Array | X509Certificate;
  /** Accepted clock difference for "not from the future" checks; default 5 min. */
  readonly maxSkewMs?: number;
  /** Size limit before decoding; default 1 MiB (never above 1 MiB, the decoder's own bound). */
  readonly maxPayloadBytes?: number;
  /** Signer CN; default {@link FLEET_PUBLISHER_NAME}. */
  readonly publisherName?: string;
  /** Longest accepted command lifetime; default 30 days. */
  readonly maxCommandLifetimeMs?: number;
  /** Verified signer chains; default the process-wide {@link sharedSignerCache}. */
  readonly signerCache?: VerifiedChainCache;
}

/**
 * The chain cache every fleet verifier uses unless given its own: one per process (per worker
 * thread); entries are keyed by the exact root and chain bytes.
 */
export const sharedSignerCache = new VerifiedChainCache(16);

/** A revocation list that verified. */
export interface VerifiedRevocationList {
  /** `new`: number above the applied one, apply it; `duplicate`: same number, apply nothing. */
  readonly kind: 'new' | 'duplicate';
  readonly list: keywarden.v1.RevocationList;
  readonly number: number;
  readonly issuedAtMs: number;
  /** 0 = no deadline. */
  readonly nextUpdateMs: number;
  readonly signedAtMs: number;
}

/** A command that verified (its nonce is not yet remembered: the caller does it on apply). */
export interface VerifiedCommand {
  readonly command: keywarden.v1.FleetCommand;
  readonly nonce: Uint8Array;
  readonly signedAtMs: number;
  readonly expiresAtMs: number;
}

/** Counts of what the verifier saw (a snapshot). */
export interface FleetCounters {
  readonly listsAccepted: number;
  readonly listsDuplicate: number;
  readonly commandsAccepted: number;
  readonly rejected: number;
  /** Rejections by error code. */
  readonly rejectedByCode: Readonly<Partial<Record<ErrorCode, number>>>;
}

function checkSize(bytes: unknown, limit: number): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw kwError('DECODE_FAILED', 'the payload is not bytes');
  if (bytes.length > limit)
    throw kwError(
      'FLEET_PAYLOAD_TOO_LARGE',
      `the payload is ${bytes.length} bytes, above the limit`,
      {
        size: bytes.length,
        limit,
      },
    );
}

/**
 * Signature, chain to the root, type; then the signer must be the fleet publisher itself.
 * The envelope checks are those of verifyMessage (src/protocol/envelope.ts), in its order
 * (decode, nonce length, chain, signature over the body, type, finite timestamp), with the
 * chain taken from the {@link VerifiedChainCache} when its exact bytes verified before.
 */
function verifyEnvelope(
  bytes: Uint8Array,
  type: MessageType,
  opts: FleetVerifierOptions,
  nowMs: number,
): { payload: Uint8Array; nonce: Uint8Array; signedAtMs: number } {
  checkSize(
    bytes,
    Math.min(opts.maxPayloadBytes ?? DEFAULT_MAX_FLEET_PAYLOAD_BYTES, MAX_MESSAGE_BYTES),
  );
  const { envelope, body } = decodeEnvelope(bytes);
  const signer = (opts.signerCache ?? sharedSignerCache).resolve(
    envelope.certChain,
    opts.trustedRoot,
    nowMs,
  );
  if (!verifyP256(signer.key, envelope.body, envelope.signature))
    throw kwError('SIGNATURE_INVALID', 'the message signature does not verify');
  checkMessageType(body, type);
  // Retained lists and queued commands are legitimately old: age is checked per kind below.
  const timestamp = Number(body.timestampMs);
  if (!Number.isFinite(timestamp))
    throw kwError('MESSAGE_STALE', 'the message timestamp is not a number', { nowMs });
  const name = opts.publisherName ?? FLEET_PUBLISHER_NAME;
  if (signer.path.length !== 1 || signer.leafIsCa || signer.leafCommonName !== name)
    throw kwError(
      'FLEET_SIGNER_NOT_PUBLISHER',
      'the message is not signed by the fleet publisher',
      { signer: signer.leafSubject.replace(/\n/g, ', ') },
    );
  const skew = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (timestamp > nowMs + skew)
    throw kwError('MESSAGE_STALE', 'the message is signed in the future', {
      timestampMs: timestamp,
      nowMs,
    });
  return { payload: body.payload, nonce: body.nonce, signedAtMs: timestamp };
}

function safeNumber(value: unknown, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw kwError('PROTOCOL_ERROR', `${what} is out of range`, { value: String(value) });
  return n;
}

const ENTRY_KINDS = new Set<number>([
  v1.RevocationEntry.Kind.DEVICE,
  v1.RevocationEntry.Kind.LICENSE,
  v1.RevocationEntry.Kind.KEY,
  v1.RevocationEntry.Kind.CONTENT,
]);

/**
 * Verifies a signed RevocationList (pure: changes nothing). Rules, in order: size; envelope
 * (chain to the operator root, signature, type FLEET_REVOCATION_LIST); signer = the fleet
 * publisher, issued directly by the root; not signed in the future; decodes; number ≥ 1;
 * issued_at_ms not in the future beyond the skew; every entry has a kind and a value;
 * number ≥ `appliedNumber` (equal = `duplicate`, apply nothing but ack).
 *
 * Errors: DECODE_FAILED (oversized, garbage), CERT_CHAIN_INVALID, CERT_UNTRUSTED_ROOT,
 * CERT_EXPIRED, SIGNATURE_INVALID (forged, or not the fleet publisher),
 * MESSAGE_TYPE_MISMATCH, MESSAGE_STALE (future, or a number below the applied one),
 * PROTOCOL_ERROR (malformed list).
 */
export function verifyRevocationList(
  bytes: Uint8Array,
  ctx: { readonly nowMs: number; readonly appliedNumber: number },
  opts: FleetVerifierOptions,
): VerifiedRevocationList {
  const { payload, signedAtMs } = verifyEnvelope(
    bytes,
    MessageType.FLEET_REVOCATION_LIST,
    opts,
    ctx.nowMs,
  );
  const list = decodeMessage(v1.RevocationList, payload, 'RevocationList');
  const number = safeNumber(list.number, 'the list number');
  const issuedAtMs = safeNumber(list.issuedAtMs, 'issued_at_ms');
  const nextUpdateMs = safeNumber(list.nextUpdateMs, 'next_update_ms');
  if (number === 0) throw kwError('PROTOCOL_ERROR', 'the list number is 0');
  const skew = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (issuedAtMs > ctx.nowMs + skew)
    throw kwError('MESSAGE_STALE', 'the list is issued in the future', {
      issuedAtMs,
      nowMs: ctx.nowMs,
    });
  if (nextUpdateMs !== 0 && nextUpdateMs < issuedAtMs)
    throw kwError('PROTOCOL_ERROR', 'next_update_ms is before issued_at_ms');
  const bad = list.entries.findIndex((e) => !ENTRY_KINDS.has(e.kind ?? 0) || !e.value);
  if (bad >= 0) throw kwError('PROTOCOL_ERROR', `list entry ${bad} has no kind or value`);
  if (number < ctx.appliedNumber)
    throw kwError('FLEET_LIST_OUTDATED', 'the list is older than the one applied', {
      number,
      applied: ctx.appliedNumber,
    });
  const kind = number === ctx.appliedNumber ? 'duplicate' : 'new';
  return { kind, list, number, issuedAtMs, nextUpdateMs, signedAtMs };
}

const ACTIONS = new Set<number>([
  v1.FleetCommand.Action.REVOKE_LICENSE,
  v1.FleetCommand.Action.REVOKE_KEY,
  v1.FleetCommand.Action.WIPE,
  v1.FleetCommand.Action.RENEW_NOW,
  v1.FleetCommand.Action.REPORT_STATUS,
]);

/**
 * Verifies a signed FleetCommand (pure: the nonce set is only read). Rules: those of the
 * envelope as for lists (type FLEET_COMMAND); then id non-empty, a known action,
 * device_id = ours, expires_at_ms set, in the future (trusted time) and at most the
 * maximum lifetime after signing; nonce not seen (and above the set's floor).
 *
 * Errors: as for lists, plus PROTOCOL_ERROR (another device, malformed), MESSAGE_STALE
 * (expired), NONCE_REPLAYED. Errors raised after the signature verified carry
 * `details.commandId`, so the caller may send a negative ack.
 */
export function verifyCommand(
  bytes: Uint8Array,
  ctx: { readonly nowMs: number; readonly deviceId: string; readonly nonces: CommandNonceSet },
  opts: FleetVerifierOptions,
): VerifiedCommand {
  const { payload, nonce, signedAtMs } = verifyEnvelope(
    bytes,
    MessageType.FLEET_COMMAND,
    opts,
    ctx.nowMs,
  );
  const command = decodeMessage(v1.FleetCommand, payload, 'FleetCommand');
  if (command.deviceId !== ctx.deviceId)
    throw kwError('FLEET_WRONG_DEVICE', 'the command is for another device', {
      deviceId: command.deviceId,
    });
  try {
    if (command.id === '') throw kwError('PROTOCOL_ERROR', 'the command has no id');
    if (!ACTIONS.has(command.action))
      throw kwError('PROTOCOL_ERROR', `unknown command action ${command.action}`);
    const expiresAtMs = safeNumber(command.expiresAtMs, 'expires_at_ms');
    if (expiresAtMs === 0) throw kwError('PROTOCOL_ERROR', 'the command has no expiry');
    if (ctx.nowMs >= expiresAtMs)
      throw kwError('FLEET_COMMAND_EXPIRED', 'the command has expired', {
        expiresAtMs,
        nowMs: ctx.nowMs,
      });
    if (expiresAtMs - signedAtMs > (opts.maxCommandLifetimeMs ?? DEFAULT_MAX_COMMAND_LIFETIME_MS))
      throw kwError('PROTOCOL_ERROR', 'the command lives longer than allowed', { expiresAtMs });
    ctx.nonces.check(nonce, signedAtMs);
    return { command, nonce, signedAtMs, expiresAtMs };
  } catch (err) {
    if (isKeywardenError(err))
      throw new KeywardenError(
        err.code,
        err.message,
        { ...err.details, commandId: command.id },
        { cause: err.cause },
      );
    throw err;
  }
}

/** {@link verifyRevocationList} and {@link verifyCommand} with counters. */
export class FleetVerifier {
  private listsAccepted = 0;
  private listsDuplicate = 0;
  private commandsAccepted = 0;
  private rejected = 0;
  private readonly byCode: Partial<Record<ErrorCode, number>> = {};

  constructor(readonly options: FleetVerifierOptions) {}

  /** See {@link verifyRevocationList}; every rejection is counted, then rethrown. */
  revocationList(
    bytes: Uint8Array,
    ctx: { readonly nowMs: number; readonly appliedNumber: number },
  ): VerifiedRevocationList {
    const v = this.counted(() => verifyRevocationList(bytes, ctx, this.options));
    if (v.kind === 'new') this.listsAccepted++;
    else this.listsDuplicate++;
    return v;
  }

  /** See {@link verifyCommand}; every rejection is counted, then rethrown. */
  command(
    bytes: Uint8Array,
    ctx: { readonly nowMs: number; readonly deviceId: string; readonly nonces: CommandNonceSet },
  ): VerifiedCommand {
    const v = this.counted(() => verifyCommand(bytes, ctx, this.options));
    this.commandsAccepted++;
    return v;
  }

  /** Counts a rejection that happened outside the verifier (e.g. a failed HTTP pull). */
  countRejection(err: unknown): void {
    this.rejected++;
    const code: ErrorCode = isKeywardenError(err) ? err.code : 'DECODE_FAILED';
    this.byCode[code] = (this.byCode[code] ?? 0) + 1;
  }

  /** A snapshot of the counters. */
  counters(): FleetCounters {
    return {
      listsAccepted: this.listsAccepted,
      listsDuplicate: this.listsDuplicate,
      commandsAccepted: this.commandsAccepted,
      rejected: this.rejected,
      rejectedByCode: { ...this.byCode },
    };
  }

  private counted<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.countRejection(err);
      if (isKeywardenError(err)) throw err;
      throw kwError('DECODE_FAILED', 'the fleet message could not be verified', {}, err);
    }
  }
}
