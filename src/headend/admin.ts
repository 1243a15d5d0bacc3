import { randomBytes } from 'node:crypto';
import { kwError } from '../errors/index.js';
import { applyFlags, canonicalFlag, FLAG_NAMES, flagSpec } from './flags.js';
import type { HeadendContext } from './headend.js';
import { applyPolicyChanges, parseStoredPolicy } from './policy/policy-args.js';
import { DEFAULT_POLICY, type PolicySpec } from './policy/policy-spec.js';
import type { DomainController } from './services/domain-controller.js';
import { createAccount } from './services/domain-keys.js';
import {
  issueEmbeddedLicense,
  type EmbeddedLicense,
  type EmbeddedLicenseRequest,
} from './services/embedded-licenses.js';
import { putRoot } from './services/root-keys.js';
import type { DeviceRow } from './store/repository.js';
import { RevocationLists } from './fleet/revocation-lists.js';

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

/** A server flag as `headend flags list` shows it. */
export interface FlagSummary {
  readonly name: string;
  /** The value in force. */
  readonly value: string;
  /** 'database' when an operator (or a serving command's option) set it, else 'default'. */
  readonly source: 'database' | 'default';
  readonly description: string;
}

/**
 * The operator's administrative operations on a head-end's data dir. Each one is a few
 * repository calls; those that must not race with the running head-end (revocation, domain
 * key rotation, content key registration) are single atomic repository methods.
 */
export class HeadendAdmin {
  constructor(
    private readonly ctx: HeadendContext,
    private readonly domains: DomainController,
  ) {}

  /** Registers a content key (sealed at rest). Returns the key only when it was generated. */
  async addContentKey(input: ContentKeyInput): Promise<{ kid: string; key?: string }> {
    if (input.kid.length !== 16) throw kwError('CLI_BAD_KEY', 'a KID is 16 bytes');
    if (input.key && input.key.length !== 16) throw kwError('CLI_BAD_KEY', 'a key is 16 bytes');
    if (input.policy) await this.requirePolicy(input.policy);
    const kid = Buffer.from(input.kid).toString('hex');
    const key = Buffer.from(input.key ?? randomBytes(16));
    const inserted = await this.ctx.store.insertContentKey({
      kid,
      sealedKey: this.ctx.sealer.seal('content-key', kid, key),
      contentId: input.contentId ?? kid,
      policy: input.policy ?? null,
      trackType: input.trackType ?? 0,
      createdAt: this.ctx.clock(),
    });
    if (!inserted) {
      // Registering the very same key again is a no-op; anything else is refused.
      const existing = await this.ctx.store.getContentKey(kid);
      const same =
        existing !== undefined &&
        this.ctx.sealer.open('content-key', kid, existing.sealedKey).equals(key);
      if (!same || input.key === undefined)
        throw kwError('CONTENT_KEY_EXISTS', `KID ${kid} is already registered`, { kid });
      return { kid };
    }
    return input.key ? { kid } : { kid, key: key.toString('hex') };
  }

  /** Creates or updates a policy from `policy set` options; `from` copies another first. */
  async setPolicy(
    name: string,
    changes: Record<string, string>,
    from?: string,
  ): Promise<PolicySpec> {
    if (!/^[\w.-]{1,64}$/.test(name))
      throw kwError('HEADEND_BAD_POLICY', `policy names are 1-64 of [A-Za-z0-9_.-]`);
    const baseJson = await this.ctx.store.getPolicy(from ?? name);
    if (from && !baseJson) throw kwError('UNKNOWN_POLICY', `no policy '${from}'`);
    const base = baseJson ? parseStoredPolicy(baseJson) : DEFAULT_POLICY;
    const spec = applyPolicyChanges(base, changes);
    for (const root of spec.roots)
      if (!(await this.ctx.store.getRoot(root))) await putRoot(this.ctx, root, null);
    await this.ctx.store.putPolicy(name, JSON.stringify(spec), this.ctx.clock());
    return spec;
  }

  /** Every policy, by name. */
  async listPolicies(): Promise<Record<string, PolicySpec>> {
    return Object.fromEntries(
      (await this.ctx.store.listPolicies()).map((p) => [p.name, parseStoredPolicy(p.spec)]),
    );
  }

  /** Assigns policy `name` to the content key `kid` (hex). */
  async setContentPolicy(kid: string, name: string): Promise<void> {
    await this.requirePolicy(name);
    const hex = kid.replace(/-/g, '').toLowerCase();
    if (!(await this.ctx.store.setContentPolicy(hex, name)))
      throw kwError('UNKNOWN_KEY', `no content key with KID ${hex}`, { kid: hex });
  }

  /** Content keys without their key material. */
  async listContent(): Promise<
    { kid: string; contentId: string; policy: string | null; trackType: number }[]
  > {
    return (await this.ctx.store.listContentKeys()).map((r) => ({
      kid: r.kid,
      contentId: r.contentId,
      policy: r.policy,
      trackType: r.trackType,
    }));
  }

  /** Creates a subscription root that leaf policies can name. */
  async addRoot(id: string, policy: string | null): Promise<void> {
    if (policy) await this.requirePolicy(policy);
    await putRoot(this.ctx, id, policy);
  }

  /** Issues a leaf license to embed in a live stream, under broadcast roots (live streams). */
  issueEmbeddedLicense(req: EmbeddedLicenseRequest): Promise<EmbeddedLicense> {
    return issueEmbeddedLicense(this.ctx, req);
  }

  async listDevices(): Promise<DeviceSummary[]> {
    return (await this.ctx.store.listDevices()).map(summarize);
  }

  /**
   * Revokes a device: no more licenses, no re-provisioning of its hardware. Revoking it
   * again changes nothing (the first time and reason are kept).
   */
  async revokeDevice(id: string, reason: string): Promise<DeviceSummary> {
    const revoked = await this.ctx.store.revokeDevice(id, this.ctx.clock(), reason);
    if (!revoked) throw kwError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
    // Also on the fleet revocation list, so the device wipes itself when it hears of it.
    await new RevocationLists(this.ctx).revoke('device', id, reason);
    return summarize(revoked.device);
  }

  /** Creates an account with its domain (or changes its limits). */
  async createDomain(
    accountId: string,
    opts: { maxDevices?: number; serviceId?: string },
  ): Promise<DomainSummary> {
    if (
      opts.maxDevices !== undefined &&
      (!Number.isSafeInteger(opts.maxDevices) || opts.maxDevices < 1)
    )
      throw kwError('CLI_USAGE', 'a domain holds at least one device');
    await createAccount(this.ctx, accountId, opts);
    return this.domain(accountId);
  }

  /** Puts an account on hold (licenses answer 6007 with `customData`), or lifts it (null). */
  async holdAccount(accountId: string, customData: string | null): Promise<DomainSummary> {
    if (!(await this.ctx.store.getAccount(accountId)))
      throw kwError('UNKNOWN_DOMAIN_ACCOUNT', `no account ${accountId}`);
    await createAccount(this.ctx, accountId, { serviceHold: customData });
    return this.domain(accountId);
  }

  /** Removes a device from an account's domain (service side); rotates the domain key. */
  async removeDomainDevice(accountId: string, deviceId: string): Promise<DomainSummary> {
    const account = await this.ctx.store.getAccount(accountId);
    if (!account) throw kwError('UNKNOWN_DOMAIN_ACCOUNT', `no account ${accountId}`);
    await this.domains.removeDevice(account, deviceId);
    return this.domain(accountId);
  }

  async listDomains(): Promise<DomainSummary[]> {
    const accounts = await this.ctx.store.listAccounts();
    const out: DomainSummary[] = [];
    for (const a of accounts) out.push(await this.domain(a.id));
    return out;
  }

  /** Sets a server flag (SERVER_FLAGS) for every worker, now and after restarts. */
  async setFlag(name: string, value: string): Promise<FlagSummary> {
    await this.ctx.store.setFlag(name, canonicalFlag(name, value), this.ctx.clock());
    return this.flag(name);
  }

  /** Removes a stored server flag: the default (or the serving command's option) applies. */
  async unsetFlag(name: string): Promise<FlagSummary> {
    flagSpec(name);
    await this.ctx.store.setFlag(name, null, this.ctx.clock());
    return this.flag(name);
  }

  /** Every server flag with the value in force and where it comes from. */
  async listFlags(): Promise<FlagSummary[]> {
    const stored = await this.ctx.store.getFlags();
    return FLAG_NAMES.map((name) => this.flagSummary(name, stored));
  }

  private async flag(name: string): Promise<FlagSummary> {
    return this.flagSummary(name, await this.ctx.store.getFlags());
  }

  private flagSummary(name: string, stored: Record<string, string>): FlagSummary {
    const spec = flagSpec(name);
    const effective = applyFlags(this.ctx.settings, stored);
    return {
      name,
      value: String(effective[spec.setting]),
      source: stored[name] !== undefined ? 'database' : 'default',
      description: spec.description,
    };
  }

  private async domain(accountId: string): Promise<DomainSummary> {
    const d = await this.ctx.store.getDomain(accountId);
    if (!d) throw kwError('UNKNOWN_DOMAIN_ACCOUNT', `no account ${accountId}`);
    const a = d.account;
    return {
      accountId: a.id,
      domainId: a.domainId,
      serviceId: a.serviceId,
      revision: a.revision,
      maxDevices: a.maxDevices,
      serviceHold: a.serviceHold,
      members: d.members.map((m) => ({
        deviceId: m.deviceId,
        friendlyName: m.friendlyName,
        joinedAt: iso(m.joinedAt),
      })),
    };
  }

  private async requirePolicy(name: string): Promise<void> {
    if (!(await this.ctx.store.getPolicy(name)))
      throw kwError('UNKNOWN_POLICY', `no policy '${name}'`);
  }
}
