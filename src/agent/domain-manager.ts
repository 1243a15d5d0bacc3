import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { pkcs8Of } from '../crypto/ecdsa.js';
import { kwError } from '../errors/index.js';
import { DomainClient, type DomainMembership } from './domain-client.js';
import type { FileSystem } from '../io/fs.js';
import { DEFAULT_RETRY, withRetry, type RetryPolicy } from './retry.js';
import type { ServiceClientOptions } from './signed-exchange.js';
import { SealedState } from './sealed-state.js';

/** A domain this device belongs to, as {@link DomainManager.list} reports it. */
export interface DomainInfo {
  readonly domainId: string;
  readonly accountId: string;
  readonly revision: number;
  readonly friendlyName: string;
  /** The domain controller that granted the membership. */
  readonly domainUrl: string;
  readonly joinedAtMs: number;
}

interface StoredMembership extends DomainInfo {
  /** PKCS#8 DER of the domain private key, base64. */
  readonly privateKey: string;
}

interface DomainFile {
  readonly version: 1;
  readonly memberships: StoredMembership[];
}

/** What the domain manager needs from the agent. */
export interface DomainManagerOptions {
  /** Where memberships persist (sealed under the device's storage key). */
  readonly file: string;
  readonly storageKey: Uint8Array;
  /** The domain controller URL used when neither the caller nor a 6041 answer names one. */
  readonly defaultUrl?: string;
  /** Signing credentials and trust, resolved when a request is made. */
  readonly client: () => Promise<ServiceClientOptions>;
  /** Trusted time, ms (join times). */
  readonly now: () => number;
  /** Retries of transient failures (network, 5xx). */
  readonly retry?: RetryPolicy;
  /** The file system (tests inject faults); node:fs by default. */
  readonly fs?: FileSystem;
}

const CONTEXT = 'keywarden/v1 agent domains';

/** A membership without its private key. */
function publicInfo(m: StoredMembership): DomainInfo {
  return {
    domainId: m.domainId,
    accountId: m.accountId,
    revision: m.revision,
    friendlyName: m.friendlyName,
    domainUrl: m.domainUrl,
    joinedAtMs: m.joinedAtMs,
  };
}

/**
 * Domain memberships (DESIGN.md "Domains"): joins and leaves at a domain controller and keeps
 * the domain key pairs, sealed to this device, so domain-bound licenses open offline too. A
 * re-join of the same account refreshes the key after the domain rotated it ("renew domain").
 */
export class DomainManager {
  private readonly state: SealedState<DomainFile>;
  private memberships = new Map<string, StoredMembership>();
  private keys = new Map<string, KeyObject>();
  private pending = new Map<string, Promise<DomainInfo>>();

  private get retry(): RetryPolicy {
    return this.opts.retry ?? DEFAULT_RETRY;
  }

  constructor(private readonly opts: DomainManagerOptions) {
    this.state = new SealedState(opts.file, opts.storageKey, CONTEXT, opts.fs);
  }

  /** Loads the persisted memberships. */
  async load(): Promise<void> {
    const file = await this.state.read();
    if (file && file.version !== 1)
      throw kwError('STORE_TAMPERED', `unknown domain file version ${String(file.version)}`);
    for (const m of file?.memberships ?? []) this.remember(m);
  }

  /** Memberships, one per domain. */
  list(): DomainInfo[] {
    return [...this.memberships.values()].map(publicInfo);
  }

  /** The membership of `domainId`, if any. */
  get(domainId: string): DomainInfo | undefined {
    return this.list().find((d) => d.domainId === domainId);
  }

  /** The membership for `accountId`, if any. */
  forAccount(accountId: string): DomainInfo | undefined {
    return this.list().find((d) => d.accountId === accountId);
  }

  /** Domain private keys by domain id, for unwrapping domain-bound licenses. */
  privateKeys(): ReadonlyMap<string, KeyObject> {
    return this.keys;
  }

  /**
   * Joins the account's domain (or refreshes the membership's key revision). Concurrent
   * joins of one account share a round trip. DOMAIN_FULL (6040), UNKNOWN_DOMAIN_ACCOUNT
   * (6042) when the controller refuses.
   */
  join(
    accountId: string,
    friendlyName: string,
    opts: { domainUrl?: string; signal?: AbortSignal } = {},
  ): Promise<DomainInfo> {
    let p = this.pending.get(accountId);
    if (!p) {
      p = this.doJoin(accountId, friendlyName, opts).finally(() => this.pending.delete(accountId));
      this.pending.set(accountId, p);
    }
    return p;
  }

  /** Leaves `domainId` at its controller, then forgets its key. NOT_A_DOMAIN_MEMBER if none. */
  async leave(domainId: string, signal?: AbortSignal): Promise<void> {
    const m = this.memberships.get(domainId);
    if (!m) throw kwError('NOT_A_DOMAIN_MEMBER', `this device is not in domain ${domainId}`);
    const client = new DomainClient({ ...(await this.opts.client()), domainUrl: m.domainUrl });
    await withRetry(() => client.leave(domainId, m.accountId, signal), this.retry, signal);
    this.memberships.delete(domainId);
    this.keys.delete(domainId);
    await this.save();
  }

  private async doJoin(
    accountId: string,
    friendlyName: string,
    opts: { domainUrl?: string; signal?: AbortSignal },
  ): Promise<DomainInfo> {
    const domainUrl =
      opts.domainUrl || this.forAccount(accountId)?.domainUrl || this.opts.defaultUrl;
    if (!domainUrl)
      throw kwError('CONFIG_INVALID', 'no domain controller URL: set domainUrl in the config');
    const client = new DomainClient({ ...(await this.opts.client()), domainUrl });
    const got: DomainMembership = await withRetry(
      () => client.join({ accountId, friendlyName }, opts.signal),
      this.retry,
      opts.signal,
    );
    const stored: StoredMembership = {
      domainId: got.domainId,
      accountId: got.accountId || accountId,
      revision: got.revision,
      friendlyName,
      domainUrl,
      joinedAtMs: this.opts.now(),
      privateKey: Buffer.from(pkcs8Of(got.privateKey)).toString('base64'),
    };
    this.remember(stored);
    await this.save();
    return publicInfo(stored);
  }

  private remember(m: StoredMembership): void {
    const key = createPrivateKey({
      key: Buffer.from(m.privateKey, 'base64'),
      format: 'der',
      type: 'pkcs8',
    });
    createPublicKey(key); // proves the key parses before anything relies on it
    this.memberships.set(m.domainId, m);
    this.keys.set(m.domainId, key);
  }

  private save(): Promise<void> {
    return this.state.write({ version: 1, memberships: [...this.memberships.values()] });
  }
}
