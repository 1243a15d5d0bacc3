import type { KeyObject } from 'node:crypto';
import { privateKeyFromPkcs8, publicKeyFromSpki, spkiOf } from '../crypto/ecdsa.js';
import { eciesUnwrap } from '../crypto/ecies.js';
import { kwError } from '../errors/index.js';
import { decodeMessage, encodeMessage } from '../protocol/codec.js';
import { MessageType } from '../protocol/envelope.js';
import { keywarden } from '../protocol/generated/proto.js';
import { domainKeyContext } from '../protocol/key-wrap.js';
import { signedExchange, type ServiceClientOptions } from './signed-exchange.js';
import { errorFromWire } from './wire-errors.js';

const v1 = keywarden.v1;

/** A domain membership: the unwrapped domain key pair and its revision. */
export interface DomainMembership {
  readonly domainId: string;
  readonly accountId: string;
  readonly revision: number;
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

/**
 * The controller's endpoint for `action`: the domain URL a 6041 answer or the config names
 * is the join endpoint (`.../v1/domain/join`); leave and members are its siblings
 * (docs/protocol.md "Endpoints").
 */
export function siblingUrl(joinUrl: string, action: 'leave' | 'members'): string {
  const u = new URL(joinUrl);
  u.pathname = /\/join\/?$/.test(u.pathname)
    ? u.pathname.replace(/\/join\/?$/, `/${action}`)
    : `${u.pathname.replace(/\/$/, '')}/${action}`;
  return u.toString();
}

/** Joins and leaves domains at a domain controller (URL from a 6041 answer or config). */
export class DomainClient {
  constructor(private readonly opts: ServiceClientOptions & { readonly domainUrl: string }) {}

  /** Joins the account's domain; DOMAIN_FULL (6040), UNKNOWN_DOMAIN_ACCOUNT (6042)... on refusal. */
  async join(
    request: keywarden.v1.IDomainJoinRequest,
    signal?: AbortSignal,
  ): Promise<DomainMembership> {
    const payload = encodeMessage(v1.DomainJoinRequest, v1.DomainJoinRequest.create(request));
    const verified = await signedExchange(
      this.opts,
      this.opts.domainUrl,
      MessageType.DOMAIN_JOIN_REQUEST,
      payload,
      MessageType.DOMAIN_JOIN_RESPONSE,
      signal,
    );
    const res = decodeMessage(v1.DomainJoinResponse, verified.payload, 'DomainJoinResponse');
    if (res.error) throw errorFromWire(res.error, 'PROTOCOL_ERROR', 'domain join refused');
    if (!res.grant) throw kwError('PROTOCOL_ERROR', 'the domain join response is empty');
    return this.membership(res.grant);
  }

  /** Leaves `domainId`. */
  async leave(domainId: string, accountId: string, signal?: AbortSignal): Promise<void> {
    const payload = encodeMessage(
      v1.DomainLeaveRequest,
      v1.DomainLeaveRequest.create({ domainId, accountId }),
    );
    const verified = await signedExchange(
      this.opts,
      siblingUrl(this.opts.domainUrl, 'leave'),
      MessageType.DOMAIN_LEAVE_REQUEST,
      payload,
      MessageType.DOMAIN_LEAVE_RESPONSE,
      signal,
    );
    const res = decodeMessage(v1.DomainLeaveResponse, verified.payload, 'DomainLeaveResponse');
    if (res.error) throw errorFromWire(res.error, 'PROTOCOL_ERROR', 'domain leave refused');
    if (res.left?.domainId !== domainId)
      throw kwError('PROTOCOL_ERROR', 'the leave was not confirmed');
  }

  private membership(grant: keywarden.v1.IDomainGrant): DomainMembership {
    const domainId = grant.domainId ?? '';
    const revision = grant.revision ?? 0;
    const pkcs8 = eciesUnwrap(
      this.opts.credentials.keyAgreement,
      grant.wrappedDomainPrivateKey ?? new Uint8Array(0),
      domainKeyContext(domainId, revision),
    );
    const privateKey = privateKeyFromPkcs8(pkcs8);
    pkcs8.fill(0);
    const publicKey = publicKeyFromSpki(grant.domainPublicKey ?? new Uint8Array(0));
    if (!Buffer.from(spkiOf(privateKey)).equals(Buffer.from(spkiOf(publicKey)))) {
      throw kwError('KEY_UNWRAP_FAILED', 'the domain private key does not match its public key');
    }
    return { domainId, accountId: grant.accountId ?? '', revision, publicKey, privateKey };
  }
}
