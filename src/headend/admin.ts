import { randomBytes } from 'node:crypto';
import { kwError } from '../errors/index.js';
import type { HeadendContext } from './headend.js';
import { applyPolicyChanges, parseStoredPolicy } from './policy/policy-args.js';
import { DEFAULT_POLICY, type PolicySpec } from './policy/policy-spec.js';
import type { DomainController } from './services/domain-controller.js';
import { createAccount } from './services/domain-keys.js';
import { putRoot } from './services/root-keys.js';
import type { DeviceRow } from './store/repository.js';

/** A content key to register. */
export interface ContentKeyInput {
  readonly kid: Uint8Array;
  /** 16 bytes; absent: generate one. */
  readonly key?: Uint8Array;
  readonly contentId?: string;
  readonly policy?: string;
  /** KeyContainer.TrackType number (0 = any). */
  readonly trackType?: number;
}

/** A device as admin listings show it (no key material). */
export interface DeviceSummary {
  readonly id: string;
  readonly status: string;
  readonly agentVersion: string;
  readonly platform: string;
  readonly model: string;
  readonly securityLevel: number;
  readonly provisionedAt: string;
  readonly revokedAt?: string;
  readonly revokeReason?: string;
}

/** A domain as admin listings show it. */
export interface DomainSummary {
  readonly accountId: string;
  readonly domainId: string;
  readonly serviceId: string;
  readonly revision: number;
  readonly maxDevices: number;
  readonly serviceHold: string | null;
  readonly members: { deviceId: string; friendlyName: string; joinedAt: string }[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

function summarize(d: DeviceRow): DeviceSummary {
  return {
    id: d.id,
    status: d.status,
    agentVersion: d.agentVersion,
    platform: d.platform,
    model: d.model,
    securityLevel: d.securityLevel,
    provisionedAt: iso(d.provisionedAt),
    ...(d.revokedAt !== null && { revokedAt: iso(d.revokedAt) }),
    ...(d.revokeReason !== null && { revokeReason: d.revokeReason }),
  };
}

/** The operator's administrative operations on a head-end's data dir. */
export class HeadendAdmin {
  constructor(
    private readonly ctx: HeadendContext,
    private readonly domains: DomainController,
  ) {}

  /** Registers a content key (sealed at rest). Returns the key only when it was generated. */
  addContentKey(input: ContentKeyInput): { kid: string; key?: string } {
    if (input.kid.length !== 16) throw kwError('CLI_BAD_KEY', 'a KID is 16 bytes');
    if (input.key && input.key.length !== 16) throw kwError('CLI_BAD_KEY', 'a key is 16 bytes');
    if (input.policy) this.requirePolicy(input.policy);
    const kid = Buffer.from(input.kid).toString('hex');
    const key = Buffer.from(input.key ?? randomBytes(16));
    const existing = this.ctx.store.getContentKey(kid);
    if (existing) {
      const same = this.ctx.sealer.open('content-key', kid, existing.sealedKey).equals(key);
      if (!same || input.key === undefined)
        throw kwError('CONTENT_KEY_EXISTS', `KID ${kid} is already registered`, { kid });
      return { kid };
    }
    this.ctx.store.putContentKey({
      kid,
      sealedKey: this.ctx.sealer.seal('content-key', kid, key),
      contentId: input.contentId ?? kid,
      policy: input.policy ?? null,
      trackType: input.trackType ?? 0,
      createdAt: this.ctx.clock(),
    });
    return input.key ? { kid } : { kid, key: key.toString('hex') };
  }

  /** Creates or updates a policy from `policy set` options; `from` copies another first. */
  setPolicy(name: string, changes: Record<string, string>, from?: string): PolicySpec {
    if (!/^[\w.-]{1,64}$/.test(name))
      throw kwError('HEADEND_BAD_POLICY', `policy names are 1-64 of [A-Za-z0-9_.-]`);
    const baseJson = this.ctx.store.getPolicy(from ?? name);
    if (from && !baseJson) throw kwError('UNKNOWN_POLICY', `no policy '${from}'`);
    const base = baseJson ? parseStoredPolicy(baseJson) : DEFAULT_POLICY;
    const spec = applyPolicyChanges(base, changes);
    for (const root of spec.roots) if (!this.ctx.store.getRoot(root)) putRoot(this.ctx, root, null);
    this.ctx.store.putPolicy(name, JSON.stringify(spec), this.ctx.clock());
    return spec;
  }

  /** Every policy, by name. */
  listPolicies(): Record<string, PolicySpec> {
    return Object.fromEntries(
      this.ctx.store.listPolicies().map((p) => [p.name, parseStoredPolicy(p.spec)]),
    );
  }

  /** Assigns policy `name` to the content key `kid` (hex). */
  setContentPolicy(kid: string, name: string): void {
    this.requirePolicy(name);
    const hex = kid.replace(/-/g, '').toLowerCase();
    if (!this.ctx.store.setContentPolicy(hex, name))
      throw kwError('UNKNOWN_KEY', `no content key with KID ${hex}`, { kid: hex });
  }

  /** Content keys without their key material. */
  listContent(): { kid: string; contentId: string; policy: string | null; trackType: number }[] {
    return this.ctx.store.listContentKeys().map((r) => ({
      kid: r.kid,
      contentId: r.contentId,
      policy: r.policy,
      trackType: r.trackType,
    }));
  }

  /** Creates a subscription root that leaf policies can name. */
  addRoot(id: string, policy: string | null): void {
    if (policy) this.requirePolicy(policy);
    putRoot(this.ctx, id, policy);
  }

  listDevices(): DeviceSummary[] {
    return this.ctx.store.listDevices().map(summarize);
  }

  /** Revokes a device: no more licenses, no re-provisioning of its hardware. */
  revokeDevice(id: string, reason: string): DeviceSummary {
    const device = this.ctx.store.getDevice(id);
    if (!device) throw kwError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
    this.ctx.store.revokeDevice(id, this.ctx.clock(), reason);
    return summarize(this.ctx.store.getDevice(id) ?? device);
  }

  /** Creates an account with its domain (or changes its limits). */
  createDomain(
    accountId: string,
    opts: { maxDevices?: number; serviceId?: string },
  ): DomainSummary {
    createAccount(this.ctx, accountId, opts);
    return this.domain(accountId);
  }

  /** Puts an account on hold (licenses answer 6007 with `customData`), or lifts it (null). */
  holdAccount(accountId: string, customData: string | null): DomainSummary {
    if (!this.ctx.store.getAccount(accountId))
      throw kwError('UNKNOWN_DOMAIN_ACCOUNT', `no account ${accountId}`);
    createAccount(this.ctx, accountId, { serviceHold: customData });
    return this.domain(accountId);
  }

  /** Removes a device from an account's domain (service side); rotates the domain key. */
  removeDomainDevice(accountId: string, deviceId: string): DomainSummary {
    const account = this.ctx.store.getAccount(accountId);
    if (!account) throw kwError('UNKNOWN_DOMAIN_ACCOUNT', `no account ${accountId}`);
    this.domains.removeDevice(account, deviceId);
    return this.domain(accountId);
  }

  listDomains(): DomainSummary[] {
    return this.ctx.store.listAccounts().map((a) => this.domain(a.id));
  }

  private domain(accountId: string): DomainSummary {
    const a = this.ctx.store.getAccount(accountId);
    if (!a) throw kwError('UNKNOWN_DOMAIN_ACCOUNT', `no account ${accountId}`);
    return {
      accountId: a.id,
      domainId: a.domainId,
      serviceId: a.serviceId,
      revision: a.revision,
      maxDevices: a.maxDevices,
      serviceHold: a.serviceHold,
      members: this.ctx.store.listMembers(a.id).map((m) => ({
        deviceId: m.deviceId,
        friendlyName: m.friendlyName,
        joinedAt: iso(m.joinedAt),
      })),
    };
  }

  private requirePolicy(name: string): void {
    if (!this.ctx.store.getPolicy(name)) throw kwError('UNKNOWN_POLICY', `no policy '${name}'`);
  }
}
