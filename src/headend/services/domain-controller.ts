import { eciesWrap } from '../../crypto/ecies.js';
import { decodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import { domainKeyContext } from '../../protocol/key-wrap.js';
import type { HeadendContext } from '../headend.js';
import type { AccountRow } from '../store/repository.js';
import { authenticateDevice, type DeviceRequest } from './device-auth.js';
import { domainKeyOf, rotateDomainKey } from './domain-keys.js';
import { isSignedRefusal, licenseErrorOf, refuse, type RefusalDetails } from './refusal.js';

const v1 = keywarden.v1;

/**
 * The domain controller: devices join an account's domain (up to its maximum) and receive
 * the domain key pair wrapped to their device key; leaving or being removed rotates the
 * key pair (a new revision), so a departed device cannot open licenses issued afterwards.
 */
export class DomainController {
  constructor(private readonly ctx: HeadendContext) {}

  /** POST /v1/domain/join. */
  join(bytes: Uint8Array): Uint8Array {
    const req = authenticateDevice(this.ctx, bytes, MessageType.DOMAIN_JOIN_REQUEST);
    const body = decodeMessage(v1.DomainJoinRequest, req.verified.payload, 'DomainJoinRequest');
    const result = this.answer(() => ({ grant: this.grant(req, body) }));
    return this.sign(req, MessageType.DOMAIN_JOIN_RESPONSE, v1.DomainJoinResponse, result);
  }

  /** POST /v1/domain/leave. */
  leave(bytes: Uint8Array): Uint8Array {
    const req = authenticateDevice(this.ctx, bytes, MessageType.DOMAIN_LEAVE_REQUEST);
    const body = decodeMessage(v1.DomainLeaveRequest, req.verified.payload, 'DomainLeaveRequest');
    const result = this.answer(() => {
      const account = this.account(body.accountId, body.domainId);
      return { left: this.removeDevice(account, req.device.id) };
    });
    return this.sign(req, MessageType.DOMAIN_LEAVE_RESPONSE, v1.DomainLeaveResponse, result);
  }

  /** POST /v1/domain/members: a member device lists its domain. */
  members(bytes: Uint8Array): Uint8Array {
    const req = authenticateDevice(this.ctx, bytes, MessageType.DOMAIN_MEMBERS_REQUEST);
    const body = decodeMessage(
      v1.DomainMembersRequest,
      req.verified.payload,
      'DomainMembersRequest',
    );
    const result = this.answer(() => {
      const account = this.account(body.accountId, body.domainId);
      if (!this.ctx.store.listMembers(account.id).some((m) => m.deviceId === req.device.id))
        throw refuse(
          'NOT_A_DOMAIN_MEMBER',
          'only members may list the domain',
          this.domainHint(account),
        );
      return { members: this.memberList(account) };
    });
    return this.sign(req, MessageType.DOMAIN_MEMBERS_RESPONSE, v1.DomainMembersResponse, result);
  }

  /** Service-side removal (admin): drops the device and rotates the domain key. */
  removeDevice(account: AccountRow, deviceId: string): keywarden.v1.IDomainLeft {
    const revision = this.ctx.store.transaction(() => {
      if (!this.ctx.store.removeMember(account.id, deviceId))
        throw refuse(
          'NOT_A_DOMAIN_MEMBER',
          `device ${deviceId} is not in the domain`,
          this.domainHint(account),
        );
      return rotateDomainKey(this.ctx, account.id);
    });
    return { domainId: account.domainId, revision };
  }

  /** The member list of an account's domain. */
  memberList(account: AccountRow): keywarden.v1.IDomainMembers {
    return {
      domainId: account.domainId,
      revision: account.revision,
      maxMembers: account.maxDevices,
      members: this.ctx.store.listMembers(account.id).map((m) => ({
        deviceId: m.deviceId,
        friendlyName: m.friendlyName,
        joinedAtMs: m.joinedAt,
      })),
    };
  }

  /** Where a device should go to join: the fields of a domain-required answer. */
  domainHint(account: AccountRow | undefined, accountId = account?.id ?? ''): RefusalDetails {
    return {
      domainServerUrl: this.ctx.settings.domainServerUrl,
      serviceId: account?.serviceId ?? this.ctx.settings.serviceId,
      accountId,
    };
  }

  private account(accountId: string, domainId: string): AccountRow {
    const account = this.ctx.store.getAccount(accountId);
    if (!account || (domainId !== '' && domainId !== account.domainId))
      throw refuse('UNKNOWN_DOMAIN_ACCOUNT', `no domain for account '${accountId}'`, { accountId });
    return account;
  }

  private grant(
    req: DeviceRequest,
    body: keywarden.v1.DomainJoinRequest,
  ): keywarden.v1.IDomainGrant {
    const account = this.ctx.store.transaction(() => {
      const acc = this.account(body.accountId, body.domainId);
      const members = this.ctx.store.listMembers(acc.id);
      const isMember = members.some((m) => m.deviceId === req.device.id);
      if (!isMember && members.length >= acc.maxDevices)
        throw refuse(
          'DOMAIN_FULL',
          `the domain has its ${acc.maxDevices} devices`,
          this.domainHint(acc),
        );
      const name = body.friendlyName.slice(0, 128);
      this.ctx.store.addMember({
        accountId: acc.id,
        deviceId: req.device.id,
        friendlyName: name,
        joinedAt: req.now,
      });
      return acc;
    });
    const key = domainKeyOf(this.ctx, account);
    const wrapped = eciesWrap(
      req.publicKey,
      key.privatePkcs8,
      domainKeyContext(key.domainId, key.revision),
    );
    key.privatePkcs8.fill(0);
    return {
      domainId: key.domainId,
      revision: key.revision,
      domainPublicKey: key.publicDer,
      wrappedDomainPrivateKey: wrapped,
      accountId: account.id,
      serverTimeMs: req.now,
      maxMembers: account.maxDevices,
    };
  }

  private answer<T extends object>(fn: () => T): T | { error: keywarden.v1.ILicenseError } {
    try {
      return fn();
    } catch (err) {
      if (isSignedRefusal(err)) return { error: licenseErrorOf(err) };
      throw err;
    }
  }

  private sign<T>(
    req: DeviceRequest,
    type: MessageType,
    cls: { create(p: object): T; encode(m: T): { finish(): Uint8Array } },
    result: object,
  ): Uint8Array {
    const payload = cls.encode(cls.create(result)).finish();
    return signMessage(type, payload, this.ctx.pki.signer('license'), {
      inReplyTo: req.verified.nonce,
      nowMs: req.now,
    });
  }
}
