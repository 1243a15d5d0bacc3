import { createHash } from 'node:crypto';
import { isKeywardenError, kwError, type KeywardenError } from '../errors/index.js';
import { keywarden } from '../protocol/generated/proto.js';
import type { LicenseStore, UsageState } from '../store/index.js';
import type { AgentContext } from './agent-context.js';
import { openEmbeddedLicense } from './embedded-license.js';
import type { ContentHeader, InitDataType } from './init-data.js';
import { unwrapLicense } from './license-keys.js';
import { LicenseExchange, verifyStoredLicense, type AcquiredLicense } from './license-exchange.js';
import { evaluate } from './policy/evaluate.js';
import { renewalPlan } from './policy/renewal.js';
import { licenseRights } from './policy/rights.js';
import { policySummary, type PolicySummary } from './policy/summary.js';
import type {
  Evaluation,
  KeyStatus,
  LicenseState,
  PolicyRule,
  RenewalHistory,
} from './policy/types.js';
import { httpRefusalCode } from './wire-errors.js';
import { withRetry } from './retry.js';

const v1 = keywarden.v1;
const LicenseType = v1.License.LicenseType;

/** What {@link LicenseManager.acquire} asks for: key ids, init data, or a content id. */
export interface AcquireRequest {
  /** Key IDs (16 bytes, or 32 hex digits, or a UUID). */
  readonly keyIds?: readonly (Uint8Array | string)[];
  /** EME-style init data: pssh boxes, an init segment or keyids JSON. */
  readonly initData?: Uint8Array;
  readonly initDataType?: InitDataType;
  /** Operator content id (pre-delivery by title). */
  readonly contentId?: string;
  /** License server for this call; else the configured override, else the pssh's URL. */
  readonly serverUrl?: string;
  /** The application's custom data for the service's business rules. */
  readonly customData?: string;
  /** Ask for a persistable (offline) license; the server's policy decides. */
  readonly persist?: boolean;
  /** Cancels the request and its retries (ACQUIRE_ABORTED). */
  readonly signal?: AbortSignal;
}

/** A license as {@link LicenseManager.select} lists it. */
export interface LicenseInfo {
  readonly id: string;
  /** Key IDs, lower-case hex. */
  readonly kids: readonly string[];
  readonly contentId: string;
  readonly type: 'streaming' | 'offline';
  /** Kept in the persistent store (else memory only). */
  readonly persisted: boolean;
  /** 'release-pending': removed by the application, the server has not confirmed yet. */
  readonly state: 'active' | 'release-pending';
  /** What a session would report for its keys now. */
  readonly status: KeyStatus;
  readonly usable: boolean;
  /** Why not usable. */
  readonly reason?: { readonly code: string; readonly number: number; readonly message: string };
  /** Playback must stop by then (trusted time, ms); absent: no limit or not usable. */
  readonly playableUntilMs?: number;
  /** When the agent renews it next (trusted time, ms). */
  readonly renewAtMs?: number;
  /** Root/leaf chain. */
  readonly chain: {
    readonly role: 'root' | 'leaf' | 'none';
    /** For a leaf: its roots, and whether each is held and valid. */
    readonly roots: readonly { readonly id: string; readonly usable: boolean }[];
    /** For a root: the leaves held that name it. */
    readonly leaves: readonly string[];
  };
  readonly policy: PolicySummary;
  readonly firstPlayMs?: number;
  readonly playCount: number;
  /** The service's custom data (e.g. the content URL of a pre-delivered license). */
  readonly customData: string;
}

/** What {@link LicenseManager.acquire} resolves to. */
export interface AcquireResult {
  readonly license: LicenseInfo;
  /** The service's response custom data. */
  readonly customData: string;
}

/** What {@link LicenseManager.remove} did. */
export interface RemoveResult {
  /** The server confirmed the release and the license is gone. */
  readonly released: boolean;
  /** The release could not be sent: the record stays, and the agent retries it. */
  readonly pending: boolean;
  readonly error?: KeywardenError;
}

/** A license the agent holds in memory (streaming) or has loaded from the store. */
interface Held {
  readonly id: string;
  license: keywarden.v1.License;
  signed: Uint8Array;
  persisted: boolean;
  licenseUrl: string;
  keys?: Map<string, Uint8Array>;
  rootKey?: Uint8Array;
  usage: UsageState;
  renewal: RenewalHistory;
  revoked: boolean;
}

/** Metadata kept in the store's index, so listing and lookups need not open license files. */
type StoredMeta = {
  readonly licenseUrl: string;
  readonly role: 'root' | 'leaf' | 'none';
  readonly rootIds: readonly string[];
  readonly canRenew: boolean;
  readonly renewal?: RenewalHistory;
};

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Normalizes a KID given as bytes, 32 hex digits or a UUID to lower-case hex. */
export function kidHex(kid: Uint8Array | string): string {
  if (typeof kid !== 'string') {
    if (kid.length !== 16) throw kwError('HEADER_MALFORMED', 'a key ID is 16 bytes');
    return hex(kid);
  }
  const h = kid.replaceAll('-', '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(h))
    throw kwError('HEADER_MALFORMED', `'${kid}' is not a key ID (32 hex digits)`);
  return h;
}

function roleOf(license: keywarden.v1.ILicense): 'root' | 'leaf' | 'none' {
  const chain = license.policy?.chain;
  if (chain?.isRoot) return 'root';
  return (chain?.rootLicenseIds?.length ?? 0) > 0 ? 'leaf' : 'none';
}

/** Usage of a license held in memory only (the store keeps its own, with real generations). */
const FRESH_USAGE: UsageState = { state: 'active', playCount: 0, generation: 0 };

/**
 * The license management of DESIGN.md: acquisition (with shared round trips, retries,
 * domain auto-join and re-individualization), the persistent and in-memory license sets,
 * enumeration, secure release, renewal, and the key lookup sessions use.
 */
export class LicenseManager {
  private readonly held = new Map<string, Held>();
  /** KID → ids of memory-only licenses (the store indexes its own). */
  private readonly memoryByKid = new Map<string, Set<string>>();
  private readonly inflight = new Map<string, Promise<AcquireResult>>();
  private readonly renewing = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: AgentContext,
    private readonly store: LicenseStore,
  ) {}

  // ---------------------------------------------------------------------------------------
  // Acquisition

  /**
   * Acquires a license: NEW request signed by the device key, answer verified, keys
   * unwrapped, stored when the policy allows persistence. Concurrent calls for the same
   * keys share one round trip. Transient failures retry with backoff and jitter; a
   * domain-required answer (6041) joins the named domain and retries once; a refused
   * certificate re-individualizes and retries once.
   */
  async acquire(req: AcquireRequest): Promise<AcquireResult> {
    const header = await this.headerOf(req);
    const url = this.licenseUrlFor(header, req.serverUrl);
    const key = JSON.stringify([header.kids, header.contentId, url, !!req.persist]);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.acquireNow(header, url, req).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async headerOf(req: AcquireRequest): Promise<ContentHeader> {
    if (req.initData) {
      const { parseInitData } = await import('./init-data.js');
      const parsed = parseInitData(req.initData, req.initDataType);
      return req.contentId ? { ...parsed, contentId: req.contentId } : parsed;
    }
    const kids = [...new Set((req.keyIds ?? []).map(kidHex))].sort();
    if (kids.length === 0 && !req.contentId)
      throw kwError('HEADER_MALFORMED', 'name the content: keyIds, initData or contentId');
    return { kids, contentId: req.contentId ?? '', licenseUrl: '', psshData: undefined };
  }

  /** Per-call URL, then the configured override, then the content's pssh (DESIGN.md step 1). */
  private licenseUrlFor(header: ContentHeader, serverUrl?: string): string {
    const url = serverUrl || this.ctx.config.licenseServerUrl || header.licenseUrl;
    if (!url)
      throw kwError(
        'LICENSE_URL_OVERRIDE_REQUIRED',
        'the content names no license server and none is configured',
      );
    return url;
  }

  private async acquireNow(
    header: ContentHeader,
    url: string,
    req: AcquireRequest,
  ): Promise<AcquireResult> {
    await this.ctx.beforeNewLicense(req.signal);
    this.ctx.emit('acquiring-license', { kids: header.kids, contentId: header.contentId, url });
    const request: keywarden.v1.ILicenseRequest = {
      keyIds: header.kids.map((k) => Buffer.from(k, 'hex')),
      contentId: header.contentId,
      ...(header.psshData && { psshData: header.psshData }),
      customData: req.customData ?? '',
      requestedType: req.persist ? LicenseType.OFFLINE : LicenseType.STREAMING,
    };
    const got = await this.exchangeWithRecovery(
      url,
      (ex) => ex.acquire(this.withClientFacts(request), req.signal),
      req.signal,
    );
    const held = await this.accept(got, url);
    const info = await this.info(held);
    this.ctx.emit('license-acquired', info);
    return { license: info, customData: held.license.customData ?? '' };
  }

  /** Adds what the server's rules read: client info and the domain membership. */
  private withClientFacts(request: keywarden.v1.ILicenseRequest): keywarden.v1.ILicenseRequest {
    const domain = this.ctx.domains.list()[0];
    return {
      ...request,
      clientInfo: this.ctx.clientInfo(),
      ...(domain && { domainId: domain.domainId, domainRevision: domain.revision }),
    };
  }

  /**
   * One exchange with the agent's recoveries around it: retries for transient failures;
   * 6041 → join the named domain, retry once; certificate refused → individualize, retry once.
   */
  private async exchangeWithRecovery<T>(
    url: string,
    op: (exchange: LicenseExchange) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    let joined = false;
    let reindividualized = false;
    for (;;) {
      try {
        return await withRetry(
          async () => op(await this.exchange(url)),
          this.ctx.config.retry,
          signal,
          (err, attempt, delayMs) =>
            this.ctx.emit('retrying', { url, attempt, delayMs, error: err as KeywardenError }),
        );
      } catch (err) {
        if (!isKeywardenError(err)) throw err;
        if (err.code === 'NOT_A_DOMAIN_MEMBER' && !joined && err.details.accountId) {
          joined = true;
          await this.joinFor(err, signal);
          continue;
        }
        if (!reindividualized && this.curableByCertificate(err)) {
          reindividualized = true;
          await this.ctx.reindividualize(err, signal);
          continue;
        }
        throw err;
      }
    }
  }

  private curableByCertificate(err: KeywardenError): boolean {
    const http = httpRefusalCode(err);
    return (
      err.code === 'CERTIFICATE_REFUSED' ||
      (http !== undefined &&
        ['UNKNOWN_DEVICE', 'CERT_EXPIRED', 'CERT_UNTRUSTED_ROOT', 'CERT_CHAIN_INVALID'].includes(
          http,
        ))
    );
  }

  /** A domain-required or renew-domain answer: join the account's domain as it names it. */
  private async joinFor(err: KeywardenError, signal?: AbortSignal): Promise<void> {
    const accountId = String(err.details.accountId);
    const renewing = this.ctx.domains.forAccount(accountId) !== undefined;
    this.ctx.emit(renewing ? 'renewing-domain' : 'joining-domain', { accountId });
    const info = await this.ctx.domains.join(accountId, this.ctx.friendlyName(), {
      domainUrl: typeof err.details.domainServerUrl === 'string' ? err.details.domainServerUrl : '',
      signal,
    });
    this.ctx.emit('domain-joined', info);
  }

  private async exchange(licenseUrl: string): Promise<LicenseExchange> {
    return new LicenseExchange({
      ...(await this.ctx.serviceClient('license')),
      licenseUrl,
      domainKeys: this.ctx.domains.privateKeys(),
      rootKeys: await this.validRootKeys(),
    });
  }

  /** Takes a verified license in: clock anchor, root keys, store or memory. */
  private async accept(got: AcquiredLicense, licenseUrl: string): Promise<Held> {
    const license = got.license;
    if (Number(license.serverTimeMs) > 0) await this.ctx.clock.anchor(Number(license.serverTimeMs));
    const id = license.id;
    if (!id) throw kwError('LICENSE_PROCESSING_FAILED', 'the license has no id');
    const previous = this.held.get(id) ?? (await this.loadStored(id).catch(() => undefined));
    const rights = licenseRights(license);
    const persist = license.type === LicenseType.OFFLINE && rights.persist;
    const held: Held = {
      id,
      license,
      signed: got.signed,
      persisted: persist,
      licenseUrl,
      keys: got.keys,
      ...(got.rootKey && { rootKey: got.rootKey }),
      usage: previous?.usage ?? FRESH_USAGE,
      renewal: { lastSuccessMs: this.ctx.clock.now() },
      revoked: false,
    };
    if (persist) {
      await this.store.put({
        id,
        kids: this.kidsOf(license),
        contentId: license.contentId,
        meta: this.metaOf(held),
        body: got.signed,
      });
      held.usage = this.store.entry(id)?.usage ?? held.usage;
    } else if (previous?.persisted) {
      await this.store.remove(id); // a renewal downgraded to streaming
    }
    this.remember(held);
    return held;
  }

  private metaOf(h: Held): StoredMeta {
    const role = roleOf(h.license);
    return {
      licenseUrl: h.licenseUrl,
      role,
      rootIds: h.license.policy?.chain?.rootLicenseIds ?? [],
      canRenew: licenseRights(h.license).renew,
      renewal: h.renewal,
    };
  }

  private kidsOf(license: keywarden.v1.ILicense): string[] {
    return (license.keys ?? []).map((k) => hex(k.kid ?? new Uint8Array(0)));
  }

  private remember(h: Held): void {
    this.forgetMemoryIndex(h.id);
    this.held.set(h.id, h);
    if (!h.persisted)
      for (const kid of this.kidsOf(h.license)) {
        let ids = this.memoryByKid.get(kid);
        if (!ids) this.memoryByKid.set(kid, (ids = new Set()));
        ids.add(h.id);
      }
  }

  private forgetMemoryIndex(id: string): void {
    for (const [kid, ids] of this.memoryByKid) {
      ids.delete(id);
      if (ids.size === 0) this.memoryByKid.delete(kid);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Loading and evaluation

  /** Loads a stored license (decrypt, authenticate, re-verify its signature) into memory. */
  private async loadStored(id: string): Promise<Held | undefined> {
    const cached = this.held.get(id);
    if (cached) return cached;
    const entry = this.store.entry(id);
    if (!entry) return undefined;
    const record = await this.store.get(id);
    const license = verifyStoredLicense(record.body, this.ctx.config.trustedRoot);
    if (license.id !== id)
      throw kwError('STORE_TAMPERED', `the stored license ${id} holds license ${license.id}`);
    if (license.deviceId && license.deviceId !== (await this.ctx.deviceId()))
      throw kwError('LICENSE_WRONG_DEVICE', `the stored license ${id} belongs to another device`);
    const meta = record.meta as unknown as StoredMeta;
    const held: Held = {
      id,
      license,
      signed: record.body,
      persisted: true,
      licenseUrl: typeof meta.licenseUrl === 'string' ? meta.licenseUrl : '',
      usage: record.usage,
      renewal: meta.renewal ?? {},
      revoked: false,
    };
    this.held.set(id, held);
    return held;
  }

  /** Held licenses carrying `kid`: memory ones and stored ones (loaded on demand). */
  private async candidates(kid: string): Promise<Held[]> {
    const ids = new Set([
      ...(this.memoryByKid.get(kid) ?? []),
      ...this.store.byKid(kid).map((e) => e.id),
    ]);
    return this.loadAll(ids);
  }

  private async loadAll(ids: Iterable<string>): Promise<Held[]> {
    const out: Held[] = [];
    for (const id of ids) {
      try {
        const h = await this.loadStored(id);
        if (h) out.push(h);
      } catch (err) {
        this.ctx.emit('store-problem', { id, error: err as KeywardenError });
      }
    }
    return out;
  }

  private state(h: Held): LicenseState {
    return {
      license: h.license,
      ...(h.usage.firstPlayMs !== undefined && { firstPlayMs: h.usage.firstPlayMs }),
      renewal: h.renewal,
      released: h.usage.state === 'release-pending',
      revoked: h.revoked,
    };
  }

  /** Root licenses a leaf names, as the policy engine needs them. */
  private async rootsOf(h: Held): Promise<Map<string, LicenseState>> {
    const roots = new Map<string, LicenseState>();
    for (const rootId of h.license.policy?.chain?.rootLicenseIds ?? []) {
      const root = await this.loadStored(rootId).catch(() => undefined);
      if (root) roots.set(rootId, this.state(root));
    }
    return roots;
  }

  /** The verified license held under `id` (memory or store), if any. */
  async licenseOf(id: string): Promise<keywarden.v1.ILicense | undefined> {
    return (this.held.get(id) ?? (await this.loadStored(id).catch(() => undefined)))?.license;
  }

  /** The policy verdict on `h` now. */
  async evaluate(h: Held, applicationId?: string, kid?: string): Promise<Evaluation> {
    const status = this.ctx.clock.status();
    return evaluate({
      ...this.state(h),
      nowMs: this.ctx.clock.nowOrUndefined(),
      clockEstimated: status.estimated,
      device: {
        securityLevel: this.ctx.securityLevel(),
        applicationId: applicationId ?? this.ctx.config.applicationId,
      },
      roots: await this.rootsOf(h),
      options: { rootRenewalLeadMs: this.ctx.config.rootRenewalLeadMs },
      output: this.ctx.outputCheck,
      ...(kid !== undefined && { kid }),
    });
  }

  /** Root keys of root licenses valid now (leaf unwrap). */
  private async validRootKeys(): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const rootIds = new Set<string>();
    for (const h of this.held.values()) if (roleOf(h.license) === 'root') rootIds.add(h.id);
    for (const e of this.store.list())
      if ((e.meta as { role?: string }).role === 'root') rootIds.add(e.id);
    for (const root of await this.loadAll(rootIds)) {
      const verdict = await this.evaluate(root);
      if (verdict.status !== 'usable') continue;
      const key = (await this.unwrap(root)).rootKey;
      if (key) out.set(root.id, key);
    }
    return out;
  }

  /**
   * Unwraps (once) the keys of a held license: device or domain keys directly, a leaf's
   * with the root key of any of its roots that is valid now.
   */
  private async unwrap(h: Held): Promise<{ keys: Map<string, Uint8Array>; rootKey?: Uint8Array }> {
    if (!h.keys) {
      const creds = this.ctx.credentialsNow();
      const roots = roleOf(h.license) === 'leaf' ? await this.validRootKeys() : new Map();
      const { keys, rootKey } = unwrapLicense(h.license, {
        deviceId: creds.deviceId,
        device: creds.keyAgreement,
        domainKeys: this.ctx.domains.privateKeys(),
        rootKeys: roots,
      });
      h.keys = keys;
      if (rootKey) h.rootKey = rootKey;
    }
    return { keys: h.keys, ...(h.rootKey && { rootKey: h.rootKey }) };
  }

  /**
   * The key for `kid` if a held license makes it usable now, else the reason it is not (the
   * most useful verdict: usable > pending > others). Used by sessions before every decrypt.
   */
  async keyFor(
    kid: string,
    applicationId?: string,
  ): Promise<{
    status: KeyStatus;
    key?: Uint8Array;
    licenseId?: string;
    error?: KeywardenError;
    /** The policy rule that blocks the key (e.g. 'output-protection' while HDCP comes up). */
    blockedBy?: PolicyRule;
  }> {
    let revokedLicense: { status: KeyStatus; error: KeywardenError; licenseId: string } | undefined;
    const revokedKey = this.revocationOf(kid);
    if (revokedKey) return { status: 'revoked', error: revokedKey };
    const candidates = (await this.candidates(kid)).filter((h) => {
      const err = this.revocationOf(kid, h);
      if (err) revokedLicense ??= { status: 'revoked', error: err, licenseId: h.id };
      return !err;
    });
    if (candidates.length === 0 && revokedLicense) return revokedLicense;
    if (candidates.length === 0)
      return {
        status: 'status-pending',
        error: kwError('LICENSE_NOT_FOUND', `no license holds key ${kid}`, { kid }),
      };
    let best:
      | { status: KeyStatus; error?: KeywardenError; licenseId?: string; blockedBy?: PolicyRule }
      | undefined;
    for (const h of candidates) {
      const verdict = await this.evaluate(h, applicationId, kid);
      if (verdict.status === 'usable') {
        try {
          const key = (await this.unwrap(h)).keys.get(kid);
          if (key) return { status: 'usable', key, licenseId: h.id };
        } catch (err) {
          best ??= {
            status: 'internal-error',
            error: err as KeywardenError,
            licenseId: h.id,
          };
          continue;
        }
      }
      if (!best || best.status === 'internal-error')
        best = {
          status: verdict.status,
          error: verdict.error,
          licenseId: h.id,
          blockedBy: verdict.reasons.find((r) => r.blocking)?.rule,
        };
    }
    return best!;
  }

  /**
   * Records a play of license `id` (first play time, play count) durably before the first
   * sample is decrypted, so a crash cannot restart the playback window.
   */
  async recordPlay(id: string): Promise<void> {
    const h = this.held.get(id);
    if (!h) return;
    const now = this.ctx.clock.now();
    const update = (u: UsageState): Partial<UsageState> => ({
      firstPlayMs: u.firstPlayMs ?? now,
      lastPlayMs: now,
      playCount: u.playCount + 1,
    });
    if (h.persisted) h.usage = await this.store.updateUsage(id, update);
    else h.usage = { ...h.usage, ...update(h.usage) };
  }

  // ---------------------------------------------------------------------------------------
  // Enumeration

  /**
   * Lists licenses holding `kid` (hex/UUID/bytes) or for content `{ contentId }`; all when
   * called without an argument. Each with its usability, expiry, chain, state and policy.
   */
  async select(
    what?: Uint8Array | string | { readonly contentId: string },
  ): Promise<LicenseInfo[]> {
    let ids: Set<string>;
    if (what === undefined) {
      ids = new Set([...this.held.keys(), ...this.store.list().map((e) => e.id)]);
    } else if (typeof what === 'object' && 'contentId' in what) {
      ids = new Set([
        ...[...this.held.values()]
          .filter((h) => h.license.contentId === what.contentId)
          .map((h) => h.id),
        ...this.store.byContent(what.contentId).map((e) => e.id),
      ]);
    } else {
      const kid = kidHex(what);
      ids = new Set((await this.candidates(kid)).map((h) => h.id));
    }
    const out: LicenseInfo[] = [];
    for (const h of await this.loadAll(ids)) out.push(await this.info(h));
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  private async info(h: Held): Promise<LicenseInfo> {
    const verdict = await this.evaluate(h);
    const role = roleOf(h.license);
    const roots: { id: string; usable: boolean }[] = [];
    for (const rootId of h.license.policy?.chain?.rootLicenseIds ?? []) {
      const root = await this.loadStored(rootId).catch(() => undefined);
      roots.push({
        id: rootId,
        usable: root ? (await this.evaluate(root)).status === 'usable' : false,
      });
    }
    const leaves =
      role === 'root'
        ? [
            ...new Set([
              ...[...this.held.values()]
                .filter((l) => l.license.policy?.chain?.rootLicenseIds?.includes(h.id))
                .map((l) => l.id),
              ...this.store
                .list()
                .filter((e) => ((e.meta as { rootIds?: string[] }).rootIds ?? []).includes(h.id))
                .map((e) => e.id),
            ]),
          ].sort()
        : [];
    return {
      id: h.id,
      kids: this.kidsOf(h.license),
      contentId: h.license.contentId,
      type: h.license.type === LicenseType.OFFLINE ? 'offline' : 'streaming',
      persisted: h.persisted,
      state: h.usage.state,
      status: verdict.status,
      usable: verdict.status === 'usable',
      ...(verdict.error && {
        reason: {
          code: verdict.error.code,
          number: verdict.error.number,
          message: verdict.error.message,
        },
      }),
      ...(verdict.playableUntilMs !== undefined && { playableUntilMs: verdict.playableUntilMs }),
      ...(verdict.renewAtMs !== undefined && { renewAtMs: verdict.renewAtMs }),
      chain: { role, roots, leaves },
      policy: policySummary(h.license),
      ...(h.usage.firstPlayMs !== undefined && { firstPlayMs: h.usage.firstPlayMs }),
      playCount: h.usage.playCount,
      customData: h.license.customData ?? '',
    };
  }

  // ---------------------------------------------------------------------------------------
  // Release

  /**
   * Secure release (DESIGN.md "License management"): marks the license release-pending
   * (durably, for a stored one), sends RELEASE, and deletes the record only once the server
   * confirmed. When the server cannot be reached the record stays pending and the agent
   * retries at start-up and on every maintenance run. Keys stop being usable at once.
   */
  async remove(id: string, signal?: AbortSignal): Promise<RemoveResult> {
    const h = await this.loadStored(id);
    if (!h) throw kwError('LICENSE_NOT_FOUND', `no license ${id}`, { id });
    if (h.usage.state !== 'release-pending') {
      if (h.persisted)
        h.usage = await this.store.updateUsage(id, () => ({ state: 'release-pending' }));
      else h.usage = { ...h.usage, state: 'release-pending' };
      this.ctx.emit('release-pending', { id });
    }
    return this.sendRelease(h, signal);
  }

  private async sendRelease(h: Held, signal?: AbortSignal): Promise<RemoveResult> {
    try {
      const url = h.licenseUrl || this.ctx.config.licenseServerUrl || '';
      if (!url) throw kwError('LICENSE_URL_OVERRIDE_REQUIRED', `no license URL to release ${h.id}`);
      await withRetry(
        async () => (await this.exchange(url)).release(h.id, signal),
        { ...this.ctx.config.retry, attempts: Math.min(2, this.ctx.config.retry.attempts) },
        signal,
      );
    } catch (err) {
      const error = err as KeywardenError;
      // The server answered and knows no such license: nothing is left to release.
      if (!(isKeywardenError(err) && err.code === 'LICENSE_NOT_FOUND')) {
        this.ctx.emit('release-failed', { id: h.id, error });
        return { released: false, pending: true, error };
      }
    }
    await this.drop(h.id);
    this.ctx.emit('released', { id: h.id });
    return { released: true, pending: false };
  }

  private async drop(id: string): Promise<void> {
    const h = this.held.get(id);
    if (h?.persisted || this.store.entry(id)) await this.store.remove(id);
    h?.keys?.forEach((k) => k.fill(0));
    h?.rootKey?.fill(0);
    this.held.delete(id);
    this.forgetMemoryIndex(id);
  }

  /** Licenses waiting for a release confirmation. */
  pendingReleases(): string[] {
    const ids = new Set<string>();
    for (const h of this.held.values()) if (h.usage.state === 'release-pending') ids.add(h.id);
    for (const e of this.store.list()) if (e.usage.state === 'release-pending') ids.add(e.id);
    return [...ids].sort();
  }

  /** Retries every pending release once; returns how many were confirmed. */
  async retryPendingReleases(signal?: AbortSignal): Promise<number> {
    let done = 0;
    for (const id of this.pendingReleases()) {
      const h = await this.loadStored(id).catch(() => undefined);
      if (h && (await this.sendRelease(h, signal)).released) done++;
    }
    return done;
  }

  // ---------------------------------------------------------------------------------------
  // Renewal

  /** Renews `id` now (RENEWAL request). CANNOT_RENEW when the policy forbids it. */
  renew(id: string, signal?: AbortSignal): Promise<void> {
    let p = this.renewing.get(id);
    if (!p) {
      p = this.renewNow(id, signal).finally(() => this.renewing.delete(id));
      this.renewing.set(id, p);
    }
    return p;
  }

  private async renewNow(id: string, signal?: AbortSignal): Promise<void> {
    const h = await this.loadStored(id);
    if (!h) throw kwError('LICENSE_NOT_FOUND', `no license ${id}`, { id });
    if (!licenseRights(h.license).renew)
      throw kwError('CANNOT_RENEW', `license ${id} may not be renewed`, { id });
    const url = h.license.policy?.renewalUrl || h.licenseUrl || this.ctx.config.licenseServerUrl;
    if (!url) throw kwError('LICENSE_URL_OVERRIDE_REQUIRED', `no URL to renew ${id}`);
    this.ctx.emit('renewing', { id });
    try {
      const got = await this.exchangeWithRecovery(
        url,
        (ex) =>
          ex.renew(
            id,
            this.withClientFacts({
              keyIds: this.kidsOf(h.license).map((k) => Buffer.from(k, 'hex')),
            }),
            signal,
          ),
        signal,
      );
      if (got.license.id !== id)
        throw kwError('PROTOCOL_ERROR', `renewal of ${id} answered license ${got.license.id}`);
      await this.accept(got, h.licenseUrl);
      this.ctx.emit('renewed', { id });
    } catch (err) {
      h.renewal = { ...h.renewal, lastFailureMs: this.ctx.clock.now() };
      if (h.persisted)
        await this.store
          .put({
            id,
            kids: this.kidsOf(h.license),
            contentId: h.license.contentId,
            meta: this.metaOf(h),
            body: h.signed,
          })
          .catch(() => undefined);
      this.ctx.emit('renewal-failed', { id, error: err as KeywardenError });
      throw err;
    }
  }

  /**
   * One maintenance pass: renews what is due (subscription roots ahead of their end),
   * reports licenses that expired, retries pending releases. Returns the next due time.
   */
  async maintain(signal?: AbortSignal): Promise<number | undefined> {
    await this.retryPendingReleases(signal).catch(() => 0);
    const now = this.ctx.clock.nowOrUndefined();
    if (now === undefined) return undefined;
    let next: number | undefined;
    const ids = new Set([
      ...this.held.keys(),
      ...this.store
        .list()
        .filter((e) => (e.meta as Partial<StoredMeta>).canRenew)
        .map((e) => e.id),
    ]);
    for (const h of await this.loadAll(ids)) {
      if (h.usage.state === 'release-pending') continue;
      const due = this.renewDue(h);
      if (due !== undefined && due <= now) {
        await this.renew(h.id, signal).catch(() => undefined);
      }
      const after = this.renewDue(h);
      if (after !== undefined && after > now) next = Math.min(next ?? after, after);
      const verdict = await this.evaluate(h);
      if (verdict.status === 'expired' && !verdict.provisional && !this.expiredSeen.has(h.id)) {
        this.expiredSeen.add(h.id);
        this.ctx.emit('expired', { id: h.id, error: verdict.error });
      }
      if (verdict.playableUntilMs !== undefined && verdict.playableUntilMs > now)
        next = Math.min(next ?? verdict.playableUntilMs, verdict.playableUntilMs);
    }
    return next;
  }

  private readonly expiredSeen = new Set<string>();

  private renewDue(h: Held): number | undefined {
    return renewalPlan(h.license, h.renewal, {
      rootRenewalLeadMs: this.ctx.config.rootRenewalLeadMs,
      ...(roleOf(h.license) === 'root' && { leadMs: this.ctx.config.rootRenewalLeadMs }),
    }).renewAtMs;
  }

  /**
   * Takes in a leaf license embedded in a live stream's pssh (docs/key-rotation.md): its
   * signature and chain are verified, its keys unwrapped with a root key held and valid now.
   * It is held in memory like a streaming license, and the policy engine judges it like any
   * leaf. Each embedded license is opened once. ROOT_LICENSE_MISSING without a valid root.
   */
  async acceptEmbedded(bytes: Uint8Array): Promise<string> {
    const digest = createHash('sha256').update(bytes).digest('hex');
    const known = this.embedded.get(digest);
    if (known && this.held.has(known)) return known;
    const rootKeys = await this.validRootKeys();
    if (rootKeys.size === 0)
      throw kwError(
        'ROOT_LICENSE_MISSING',
        'an embedded license needs a root license; none is held',
      );
    const opened = openEmbeddedLicense(bytes, {
      trustedRoot: this.ctx.config.trustedRoot,
      rootKeys,
      nowMs: this.ctx.clock.now(),
    });
    const id = opened.license.id;
    if (!id) throw kwError('LICENSE_PROCESSING_FAILED', 'the embedded license has no id');
    const existing = this.held.get(id);
    if (!existing || existing.keys === undefined)
      this.remember({
        id,
        license: opened.license,
        signed: bytes,
        persisted: false,
        licenseUrl: '',
        keys: opened.keys,
        usage: FRESH_USAGE,
        renewal: {},
        revoked: false,
      });
    this.embedded.set(digest, id);
    return id;
  }

  private readonly embedded = new Map<string, string>();

  /**
   * Applies revocations from the operator (fleet revocation list or command): the keys of
   * revoked licenses, key ids and content ids turn 'revoked' at once (LICENSE_REVOKED), and
   * stored licenses they touch are deleted. A revoked device (`device: true`) loses every
   * key and license and refuses to play. Idempotent: applying the same entries again changes
   * nothing. Returns the ids of the licenses it revoked.
   */
  async applyRevocations(r: {
    readonly licenses?: readonly string[];
    readonly kids?: readonly string[];
    readonly contentIds?: readonly string[];
    readonly device?: boolean;
  }): Promise<string[]> {
    for (const id of r.licenses ?? []) this.revoked.licenses.add(id);
    for (const kid of r.kids ?? []) this.revoked.kids.add(kid.toLowerCase());
    for (const c of r.contentIds ?? []) this.revoked.contents.add(c);
    if (r.device) this.revoked.device = true;
    const touched = new Set<string>();
    const consider = (id: string, kids: readonly string[], contentId: string): void => {
      if (
        this.revoked.device ||
        this.revoked.licenses.has(id) ||
        this.revoked.contents.has(contentId) ||
        kids.some((k) => this.revoked.kids.has(k))
      )
        touched.add(id);
    };
    for (const h of this.held.values()) consider(h.id, this.kidsOf(h.license), h.license.contentId);
    for (const e of this.store.list()) consider(e.id, e.kids, e.contentId);
    for (const id of touched) {
      const h = this.held.get(id);
      if (h) {
        h.revoked = true;
        h.keys?.forEach((k) => k.fill(0));
        h.rootKey?.fill(0);
        h.keys = new Map();
        delete h.rootKey;
        h.persisted = false; // its file goes now; the record stays in memory as 'revoked'
        this.remember(h);
      }
      if (this.store.entry(id)) await this.store.remove(id);
    }
    return [...touched].sort();
  }

  /** True once the operator revoked this device: nothing plays. */
  get deviceRevoked(): boolean {
    return this.revoked.device;
  }

  private readonly revoked = {
    licenses: new Set<string>(),
    kids: new Set<string>(),
    contents: new Set<string>(),
    device: false,
  };

  /** The revocation that covers `kid` / `h`, if any. */
  private revocationOf(kid: string, h?: Held): KeywardenError | undefined {
    if (this.revoked.device)
      return kwError('DEVICE_REVOKED', 'the operator revoked this device', { kid });
    if (this.revoked.kids.has(kid))
      return kwError('LICENSE_REVOKED', `the operator revoked key ${kid}`, { kid });
    if (h && (h.revoked || this.revoked.licenses.has(h.id)))
      return kwError('LICENSE_REVOKED', `the operator revoked license ${h.id}`, { id: h.id });
    if (h && this.revoked.contents.has(h.license.contentId))
      return kwError('LICENSE_REVOKED', `the operator revoked content ${h.license.contentId}`, {
        contentId: h.license.contentId,
      });
    return undefined;
  }
}
