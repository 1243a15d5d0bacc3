import { eciesWrap } from '../../crypto/ecies.js';
import { decodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import { domainKeyContext } from '../../protocol/key-wrap.js';
import type { HeadendContext } from '../headend.js';
import type { AccountRow, DomainRows } from '../store/repository.js';
import { authenticateDevice, type DeviceRequest } from './device-auth.js';
import { domainKeyOf, rotateDomainKey } from './domain-keys.js';
import { isSignedRefusal, licenseErrorOf, refuse, type RefusalDetails } from './refusal.js';

const v1 = keywarden.v1;

/** Longest friendly name kept for a member. */
const MAX_FRIENDLY_NAME = 128;

/**
 * The domain controller: devices join an account's domain (up to its maximum) and receive
 * the domain key pair wrapped to their device key; leaving or being removed rotates the
 * key pair (a new revision), so a departed device cannot open licenses issued afterwards.
 * Each decision (the limit check and the join, the removal and the rotation) is one atomic
 * repository call, so concurrent requests on any number of workers cannot overfill a
 * domain or lose a rotation.
 */
export class DomainController {
  constructor(private readonly ctx: HeadendContext) {}

  /** POST /v1/domain/join. */
  async join(bytes: Uint8Array): Promise<Uint8Array> {
    const req = await authenticateDevice(this.ctx, bytes, MessageType.DOMAIN_JOIN_REQUEST);
    const body = decodeMessage(v1.DomainJoinRequest, req.verified.payload, 'DomainJoinRequest');
    const result = await this.answer(async () => ({ grant: await this.grant(req, body) }));
    return this.sign(req, MessageType.DOMAIN_JOIN_RESPONSE, v1.DomainJoinResponse, result);
  }

  /** POST /v1/domain/leave. */
  async leave(bytes: Uint8Array): Promise<Uint8Array> {
    const req = await authenticateDevice(this.ctx, bytes, MessageType.DOMAIN_LEAVE_REQUEST);
    const body = decodeMessage(v1.DomainLeaveRequest, req.verified.payload, 'DomainLeaveRequest');
    const result = await this.answer(async () => {
      const account = await this.account(body.accountId, body.domainId);
      return { left: await this.removeDevice(account, req.device.id) };
    });
    return this.sign(req, MessageType.DOMAIN_LEAVE_RESPONSE, v1.DomainLeaveResponse, result);
  }

  /** POST /v1/domain/members: a member device lists its domain. */
  async members(bytes: Uint8Array): Promise<Uint8Array> {
    const req = await authenticateDevice(this.ctx, bytes, MessageType.DOMAIN_MEMBERS_REQUEST);
    const body = decodeMessage(
      v1.DomainMembersRequest,
      req.verified.payload,
      'DomainMembersRequest',
    );
    const result = await this.answer(async () => {
      const domain = await this.domain(body.accountId, body.domainId);
      if (!domain.members.some((m) => m.deviceId === req.device.id))
        throw refuse(
          'NOT_A_DOMAIN_MEMBER',
          'only members may list the domain',
          this.domainHint(domain.account),
        );
      return { members: this.memberList(domain) };
    });
    return this.sign(req, MessageType.DOMAIN_MEMBERS_RESPONSE, v1.DomainMembersResponse, result);
  }

  /** Drops the device and rotates the domain key, in one transaction (leave, admin removal). */
  async removeDevice(account: AccountRow, deviceId: string): Promise<keywarden.v1.IDomainLeft> {
    const { result, revision } = await rotateDomainKey(this.ctx, account.id, deviceId);
    if (result === 'not-member')
      throw refuse(
        'NOT_A_DOMAIN_MEMBER',
        `device ${deviceId} is not in the domain`,
        this.domainHint(account),
      );
    if (result === 'unknown-account')
      throw refuse('UNKNOWN_DOMAIN_ACCOUNT', `no domain for account '${account.id}'`, {
        accountId: account.id,
      });
    return { domainId: account.domainId, revision };
  }

  /** The member list of a domain. */
  memberList(domain: DomainRows): keywarden.v1.IDomainMembers {
    return {
      domainId: domain.account.domainId,
      revision: domain.account.revision,
      maxMembers: domain.account.maxDevices,
      members: domain.members.map((m) => ({
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

  private unknownAccount(accountId: string): never {
    throw refuse('UNKNOWN_DOMAIN_ACCOUNT', `no domain for account '${accountId}'`, { accountId });
  }

  private async account(accountId: string, domainId: string): Promise<AccountRow> {
    const account = await this.ctx.store.getAccount(accountId);
    if (!account || (domainId !== '' && domainId !== account.domainId))
      this.unknownAccount(accountId);
    return account;
  }

  private async domain(accountId: string, domainId: string): Promise<DomainRows> {
    const domain = await this.ctx.store.getDomain(accountId);
    if (!domain || (domainId !== '' && domainId !== domain.account.domainId))
      this.unknownAccount(accountId);
    return domain;
  }

  private async grant(
    req: DeviceRequest,
    body: keywarden.v1.DomainJoinRequest,
  ): Promise<keywarden.v1.IDomainGrant> {
    const joined = await this.ctx.store.joinDomain({
      accountId: body.accountId,
      domainId: body.domainId,
      deviceId: req.device.id,
      friendlyName: body.friendlyName.slice(0, MAX_FRIENDLY_NAME),
      at: req.now,
    });
    if (joined.status === 'unknown-account') this.unknownAccount(body.accountId);
    const account = joined.account;
    if (joined.status === 'full')
      throw refuse(
        'DOMAIN_FULL',
        `the domain has its ${account.maxDevices} devices`,
        this.domainHint(account),
      );
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

  /** Runs `fn`; a business refusal becomes the signed LicenseError of the answer. */
  private async answer<T extends object>(
    fn: () => Promise<T>,
  ): Promise<T | { error: keywarden.v1.ILicenseError }> {
    try {
      return await fn();
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
