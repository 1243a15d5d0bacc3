import { EventEmitter } from 'node:events';
import path from 'node:path';
import { readHardwareIdentity } from '../crypto/hardware-identity.js';
import { SoftwareKeyVault, type KeyVault } from '../crypto/key-vault.js';
import { ReplayGuard } from '../crypto/replay-guard.js';
import { SecureClock } from '../crypto/secure-clock.js';
import { isKeywardenError, kwError, type KeywardenError } from '../errors/index.js';
import { NODE_FS } from '../io/fs.js';
import { DEFAULT_MAX_SKEW_MS } from '../protocol/envelope.js';
import { keywarden } from '../protocol/generated/proto.js';
import { OutputMonitor } from '../output/monitor.js';
import { LicenseStore } from '../store/index.js';
import type { AgentContext } from './agent-context.js';
import { resolveAgentConfig, type AgentConfig, type ResolvedAgentConfig } from './config.js';
import type { DeviceCredentials } from './device-credentials.js';
import type { FleetClient } from '../fleet/index.js';
import type { FleetLink } from './fleet-link.js';
import { DomainManager, type DomainInfo } from './domain-manager.js';
import type { AgentEvents } from './events.js';
import { Individualizer } from './individualization.js';
import type { ContentHeader, InitDataType } from './init-data.js';
import { LicenseManager } from './license-manager.js';
import type { OutputInput } from './policy/types.js';
import { httpTransport, type ProtocolTransport } from './protocol-transport.js';
import type { Session, SessionOptions } from './session.js';
import type { ServiceClientOptions } from './signed-exchange.js';

const v1 = keywarden.v1;

const LEVELS: Record<KeyVault['securityLevel'], keywarden.v1.SecurityLevel> = {
  software: v1.SecurityLevel.SECURITY_LEVEL_SOFTWARE,
  tee: v1.SecurityLevel.SECURITY_LEVEL_TEE,
  hardware: v1.SecurityLevel.SECURITY_LEVEL_HARDWARE,
};

/** Where the agent keeps its state under `stateDir`. */
export const STATE_FILES = {
  vault: 'device-key.json',
  licenses: 'licenses',
  clock: 'secure-clock.bin',
  domains: 'domains.bin',
} as const;

/** A snapshot for status pages and `keywarden agent status`. */
export interface AgentStatus {
  readonly deviceId: string | undefined;
  readonly individualized: boolean;
  readonly securityLevel: string;
  readonly clock: {
    readonly trusted: boolean;
    readonly estimated: boolean;
    readonly nowMs: number | undefined;
    readonly rollbackDetected: boolean;
  };
  readonly licensesStored: number;
  readonly pendingReleases: readonly string[];
  readonly domains: readonly DomainInfo[];
}

/** The domain half of the agent's API. */
export interface DomainsApi {
  /** Joins the account's domain (DOMAIN_FULL 6040, UNKNOWN_DOMAIN_ACCOUNT 6042 on refusal). */
  join(
    accountId: string,
    friendlyName?: string,
    opts?: { domainUrl?: string; signal?: AbortSignal },
  ): Promise<DomainInfo>;
  /** Leaves a domain (the only one when `domainId` is omitted). */
  leave(domainId?: string, signal?: AbortSignal): Promise<void>;
  /** Current memberships. */
  list(): DomainInfo[];
}

/**
 * The keywarden agent: one device's DRM client. It individualizes the device on first
 * need, acquires, stores, renews and releases licenses, joins domains, keeps trusted time,
 * and opens playback sessions that decrypt Common Encryption only within the license's
 * rights. Create it with {@link Agent.create}; listen to its {@link AgentEvents}.
 */
export class Agent extends EventEmitter<AgentEvents> implements AgentContext {
  readonly licenses: LicenseManager;
  readonly domains: DomainManager;
  /** The domain API as integrators use it. */
  readonly domain: DomainsApi;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private creds: DeviceCredentials | undefined;
  private readonly transport: ProtocolTransport;
  private readonly replayGuard = new ReplayGuard({ windowMs: 2 * DEFAULT_MAX_SKEW_MS });
  private readonly sessions = new Set<Session>();
  /** The fleet channel, once connected (config.fleet). */
  fleet: FleetLink | undefined;
  private fleetStart: Promise<void> | undefined;
  /** What opening the state found wrong (also emitted as events right after create). */
  startupProblems: readonly KeywardenError[] = [];
  /**
   * Replaces the output monitor's verdict for every license (a test or an integration with
   * its own output checks); undefined = the monitor decides.
   */
  outputOverride: OutputInput | undefined;
  private outputMonitor: OutputMonitor | undefined;

  private constructor(
    readonly config: ResolvedAgentConfig,
    readonly vault: KeyVault,
    readonly clock: SecureClock,
    private readonly individualizer: Individualizer,
    readonly store: LicenseStore,
    domainsFile: string,
  ) {
    super();
    this.transport =
      config.transport ??
      httpTransport({
        headers: (url) => this.filterHeaders(url),
      });
    this.domains = new DomainManager({
      file: domainsFile,
      storageKey: vault.storageKey('domains'),
      defaultUrl: config.domainUrl,
      client: () => this.serviceClient('domain'),
      now: () => this.trustedOrWallNow(),
      retry: config.retry,
      ...(config.fs && { fs: config.fs }),
    });
    this.licenses = new LicenseManager(this, store);
    this.domain = {
      join: async (accountId, friendlyName, opts) => {
        const info = await this.domains.join(accountId, friendlyName ?? this.friendlyName(), opts);
        this.emit('domain-joined', info);
        return info;
      },
      leave: async (domainId, signal) => {
        const id = domainId ?? this.only(this.domains.list())?.domainId;
        if (!id) throw kwError('NOT_A_DOMAIN_MEMBER', 'this device is in no domain');
        await this.domains.leave(id, signal);
        this.emit('domain-left', { domainId: id });
      },
      list: () => this.domains.list(),
    };
    clock.on('rollback', (err) => this.emit('clock-rollback', err));
    individualizer.on('individualizing', (e) => this.emit('individualizing', e));
    individualizer.on('individualized', (e) => this.emit('individualized', e));
    individualizer.on('hardware-changed', (e) => this.emit('hardware-changed', e));
  }

  /**
   * Opens the agent on `config.stateDir`: the key vault (creating a device key if needed,
   * no network), the license store, the secure clock and the domain memberships. Pending
   * releases are retried in the background. Individualization waits for the first need.
   */
  static async create(input: AgentConfig): Promise<Agent> {
    const config = resolveAgentConfig(input);
    const fs = config.fs ?? NODE_FS;
    await fs.mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    const identity = await readHardwareIdentity(config.identitySources);
    const vault =
      config.vault ??
      new SoftwareKeyVault({ file: path.join(config.stateDir, STATE_FILES.vault), identity, fs });
    const individualizer = new Individualizer({
      provisioningUrl: config.provisioningUrl,
      vault,
      identity,
      trustedRoot: config.trustedRoot,
      agentVersion: config.agentVersion,
      attestation: { platform: `${process.platform}-${process.arch}` },
      ...(config.transport && { transport: config.transport }),
      now: () => (config.time ?? { wallMs: Date.now }).wallMs(),
    });
    const early: KeywardenError[] = [];
    individualizer.once('hardware-changed', (e) => early.push(e));
    await individualizer.prepare();
    const clock = await SecureClock.open({
      file: path.join(config.stateDir, STATE_FILES.clock),
      key: vault.storageKey('secure-clock'),
      ...(config.time && { source: config.time }),
      fs,
    });
    const { store, problem } = await openStore(config, vault);
    const agent = new Agent(
      config,
      vault,
      clock,
      individualizer,
      store,
      path.join(config.stateDir, STATE_FILES.domains),
    );
    await agent.domains.load().catch((err: unknown) => {
      if (!isKeywardenError(err)) throw err;
      early.push(err); // a foreign or edited domains file: memberships must be renewed
    });
    // Offline start: a device that holds a current certificate needs no network to play.
    agent.creds = await individualizer.credentialsIfIndividualized();
    const startup: [keyof AgentEvents, unknown][] = [
      ...early.map((e): [keyof AgentEvents, unknown] => [
        e.code === 'HARDWARE_CHANGED' ? 'hardware-changed' : 'problem',
        e,
      ]),
      ...(problem ? [['store-problem', { error: problem }] as [keyof AgentEvents, unknown]] : []),
      ...store.problems.map((p): [keyof AgentEvents, unknown] => [
        'store-problem',
        { id: p.id, error: p.error },
      ]),
    ];
    const clockStatus = clock.status();
    if (clockStatus.loadError) startup.push(['problem', clockStatus.loadError]);
    if (clockStatus.rollbackDetected)
      startup.push([
        'clock-rollback',
        kwError('CLOCK_ROLLBACK', 'the wall clock is behind trusted time', {
          driftMs: clockStatus.driftMs,
        }),
      ]);
    agent.startupProblems = startup.map(([, p]) =>
      isKeywardenError(p) ? p : (p as { error: KeywardenError }).error,
    );
    // What opening found is told once the caller can listen (after `await Agent.create`).
    setImmediate(() => {
      for (const [event, payload] of startup)
        (agent.emit as (e: string, p: unknown) => boolean)(event, payload);
    });
    if (config.autoMaintenance !== false) agent.schedule(0);
    if (config.fleet) {
      // The fleet channel signs with the device key: it starts once the device holds one.
      if (agent.creds) await agent.startFleet(agent.creds);
      else
        agent.once('individualized', () =>
          // After the individualization settles: its credentials are not handed out yet.
          setImmediate(() => {
            agent
              .credentials()
              .then((c) => agent.startFleet(c))
              .catch((err: unknown) => {
                if (isKeywardenError(err)) agent.emit('problem', err);
              });
          }),
        );
    }
    return agent;
  }

  // -------------------------------------------------------------------------------------
  // Public API

  /** Individualizes now if the device has no current certificate (else returns at once). */
  async individualize(signal?: AbortSignal): Promise<{ deviceId: string }> {
    const creds = await this.credentials(signal);
    return { deviceId: creds.deviceId };
  }

  /**
   * Opens a playback session for content described by `initData` (pssh boxes, an init
   * segment, or keyids JSON). With `autoAcquire` (default) missing licenses are acquired
   * now; key statuses tell the result.
   */
  async openSession(
    initData: Uint8Array,
    opts: SessionOptions & { initDataType?: InitDataType; signal?: AbortSignal } = {},
  ): Promise<Session> {
    this.ensureOpen();
    // The media stack loads with the first session: an idle agent service stays small.
    const [{ Session }, { parseInitData, sniffInitDataType }] = await Promise.all([
      import('./session.js'),
      import('./init-data.js'),
    ]);
    const header = parseInitData(initData, opts.initDataType);
    const isInitSegment = (opts.initDataType ?? sniffInitDataType(initData)) === 'mp4';
    const session = new Session(
      {
        licenses: this.licenses,
        acquireFor: (h, kids, signal) => this.acquireFor(h, kids, signal),
        settleOutputs: async (licenseId, signal) => {
          const license = await this.licenses.licenseOf(licenseId);
          if (license) await this.outputs.prepare(license, signal);
        },
      },
      header,
      { ...opts, ...(isInitSegment && !opts.init && { init: initData }) },
    );
    this.sessions.add(session);
    session.once('closed', () => this.sessions.delete(session));
    if (opts.autoAcquire !== false) await session.load(opts.signal);
    else await session.refresh();
    return session;
  }

  /**
   * Applies an operator revocation (from the fleet channel, or any other trusted source):
   * affected keys turn 'revoked' in open sessions at once and decryption refuses them;
   * stored licenses are deleted; a revoked device loses every key and plays nothing.
   */
  async applyRevocations(r: Parameters<LicenseManager['applyRevocations']>[0]): Promise<string[]> {
    const ids = await this.licenses.applyRevocations(r);
    await Promise.all([...this.sessions].map((s) => s.refresh().catch(() => undefined)));
    this.emit('revoked', { licenses: ids, device: this.licenses.deviceRevoked });
    return ids;
  }

  /** A status snapshot. */
  status(): AgentStatus {
    const clock = this.clock.status();
    const cert = this.vault.loadCertificate();
    return {
      deviceId: cert?.deviceId,
      individualized: cert !== undefined,
      securityLevel: this.vault.securityLevel,
      clock: {
        trusted: clock.trusted,
        estimated: clock.estimated,
        nowMs: this.clock.nowOrUndefined(),
        rollbackDetected: clock.rollbackDetected,
      },
      licensesStored: this.store.list().length,
      pendingReleases: this.licenses.pendingReleases(),
      domains: this.domains.list(),
    };
  }

  /**
   * One maintenance pass (renewals due, expiry events, pending releases); the agent runs it
   * on a timer, and tests call it after moving their clock.
   */
  async maintain(signal?: AbortSignal): Promise<number | undefined> {
    this.ensureOpen();
    const next = await this.licenses.maintain(signal);
    // Persist the trusted time's high-water mark, so a power cut loses little of it.
    await this.clock.checkpoint();
    return next;
  }

  /** Stops timers, closes sessions and the store, persists the clock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fleet?.stop().catch(() => undefined);
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.sessions) s.close();
    if (this.outputMonitor && this.outputMonitor !== this.config.output?.monitor)
      this.outputMonitor.close();
    await this.clock.checkpoint().catch(() => undefined);
    await this.store.close();
  }

  // -------------------------------------------------------------------------------------
  // AgentContext

  async serviceClient(service: 'license' | 'domain'): Promise<ServiceClientOptions> {
    void service;
    return {
      credentials: await this.credentials(),
      trustedRoot: this.config.trustedRoot,
      transport: this.transport,
      now: () => this.trustedOrWallNow(),
      replayGuard: this.replayGuard,
    };
  }

  credentialsNow(): DeviceCredentials {
    if (!this.creds) throw kwError('NOT_INDIVIDUALIZED', 'the device is not individualized yet');
    return this.creds;
  }

  async deviceId(): Promise<string> {
    return (await this.credentials()).deviceId;
  }

  async reindividualize(err: KeywardenError, signal?: AbortSignal): Promise<void> {
    this.creds = await this.individualizer.handleRefusal(err, signal);
  }

  async beforeNewLicense(signal?: AbortSignal): Promise<void> {
    const fleet = this.config.fleet;
    if (!fleet || fleet.whenStale === 'allow') return;
    await this.startFleet(await this.credentials(signal));
    const client = this.fleet?.client;
    if (!client || !client.isStale(this.trustedOrWallNow())) return;
    // One pull over HTTP (the broker may be down), else a short wait for MQTT's retained list.
    await client.refresh();
    if (client.isStale(this.trustedOrWallNow()))
      await waitForList(client, () => this.trustedOrWallNow(), STALE_WAIT_MS, signal);
    if (!client.isStale(this.trustedOrWallNow())) return;
    throw kwError(
      'FLEET_LIST_STALE',
      client.appliedListNumber === 0
        ? 'no revocation list has reached this device yet; new licenses wait for one'
        : `revocation list ${client.appliedListNumber} is past its next update; new licenses wait for a fresh one`,
      { listNumber: client.appliedListNumber },
    );
  }

  /** The output verdict for the policy engine: the override, else the output monitor's. */
  get outputCheck(): OutputInput {
    return this.outputOverride ?? ((license, kid) => this.outputs.check(license, kid));
  }

  /**
   * The output monitor (docs/output-protection.md), opened on first use: it reads the
   * connectors, engages HDCP for licenses that need it, and re-evaluates open sessions when
   * the outputs change.
   */
  get outputs(): OutputMonitor {
    if (this.outputMonitor) return this.outputMonitor;
    const { monitor: shared, ...options } = this.config.output ?? {};
    let monitor: OutputMonitor;
    try {
      monitor = shared ?? OutputMonitor.open(options);
    } catch (err) {
      if (!isKeywardenError(err)) throw err;
      setImmediate(() => this.emit('problem', err));
      monitor = OutputMonitor.unknown(err.message);
    }
    this.outputMonitor = monitor;
    monitor.on('change', (state) => {
      this.emit('output-change', state);
      void Promise.all([...this.sessions].map((s) => s.refresh().catch(() => undefined)));
    });
    monitor.on('incident', (i) => this.emit('output-incident', i));
    monitor.on('problem', (e) => this.emit('problem', e));
    monitor.watch();
    return monitor;
  }

  clientInfo(): keywarden.v1.IClientInfo {
    return {
      outputs: this.outputs.clientInfoOutputs(),
      agentVersion: this.config.agentVersion,
      securityLevel: this.securityLevel(),
      applicationId: this.config.applicationId ?? '',
      platform: `${process.platform}-${process.arch}`,
    };
  }

  securityLevel(): keywarden.v1.SecurityLevel {
    return LEVELS[this.vault.securityLevel];
  }

  friendlyName(): string {
    return this.config.friendlyName ?? `keywarden ${process.platform}-${process.arch}`;
  }

  // -------------------------------------------------------------------------------------
  // Internals

  /** Starts the fleet link once; concurrent callers share the start. */
  private startFleet(creds: DeviceCredentials): Promise<void> {
    this.fleetStart ??= this.startFleetNow(creds).catch((err: unknown) => {
      this.fleetStart = undefined;
      throw err;
    });
    return this.fleetStart;
  }

  private async startFleetNow(creds: DeviceCredentials): Promise<void> {
    if (this.fleet || this.closed || !this.config.fleet) return;
    const { FleetLink } = await import('./fleet-link.js');
    this.fleet = new FleetLink(
      {
        stateDir: this.config.stateDir,
        ...(this.config.fs && { fs: this.config.fs }),
        storageKey: (p) => this.vault.storageKey(p),
        trustedRoot: this.config.trustedRoot,
        agentVersion: this.config.agentVersion,
        licenses: this.licenses,
        applyRevocations: (r) => this.applyRevocations(r),
        now: () => this.trustedOrWallNow(),
      },
      creds,
      this.config.fleet,
    );
    this.fleet.client.on('rejected', (e) => {
      // The HTTP pull on every connect meets the list MQTT already delivered: not a problem.
      if (!(e.source === 'http' && e.error.code === 'FLEET_LIST_OUTDATED'))
        this.emit('problem', e.error);
    });
    await this.fleet.start();
  }

  private async credentials(signal?: AbortSignal): Promise<DeviceCredentials> {
    if (this.creds) return this.creds;
    this.creds =
      (await this.individualizer.credentialsIfIndividualized()) ??
      (await this.individualizer.ensureIndividualized(signal));
    return this.creds;
  }

  private async acquireFor(
    header: ContentHeader,
    kids: readonly string[],
    signal?: AbortSignal,
  ): Promise<void> {
    await this.credentials(signal);
    await this.licenses.acquire({
      keyIds: kids.length > 0 ? kids : header.kids,
      contentId: header.contentId,
      ...(header.licenseUrl && { serverUrl: this.config.licenseServerUrl || header.licenseUrl }),
      ...(signal && { signal }),
    });
  }

  /** Trusted time once anchored, else the wall clock (cert validity before the first anchor). */
  private trustedOrWallNow(): number {
    return this.clock.nowOrUndefined() ?? (this.config.time ?? { wallMs: Date.now }).wallMs();
  }

  private async filterHeaders(url: string): Promise<Record<string, string>> {
    if (!this.config.requestFilter) return {};
    const service = url.includes('/provision')
      ? 'provisioning'
      : url.includes('/domain')
        ? 'domain'
        : 'license';
    return this.config.requestFilter({ url, service });
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.maintain()
        .then((next) => {
          const now = this.clock.nowOrUndefined();
          const wait =
            next !== undefined && now !== undefined
              ? Math.max(1000, Math.min(next - now, this.config.maintenanceIntervalMs))
              : this.config.maintenanceIntervalMs;
          this.schedule(wait);
        })
        .catch((err: unknown) => {
          if (isKeywardenError(err)) this.emit('problem', err);
          this.schedule(this.config.maintenanceIntervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  private only<T>(list: readonly T[]): T | undefined {
    if (list.length > 1)
      throw kwError('NOT_A_DOMAIN_MEMBER', 'the device is in several domains: name one');
    return list[0];
  }

  private ensureOpen(): void {
    if (this.closed) throw kwError('SESSION_CLOSED', 'the agent is closed');
  }
}

/**
 * Opens the license store. One made under another storage key (the hardware identity
 * changed, or it was copied from another device) cannot be used: it is moved aside, never
 * deleted, and a fresh store is opened.
 */
async function openStore(
  config: ResolvedAgentConfig,
  vault: KeyVault,
): Promise<{ store: LicenseStore; problem?: KeywardenError }> {
  const dir = path.join(config.stateDir, STATE_FILES.licenses);
  const storageKey = vault.storageKey('license-store');
  const counter = config.rollbackCounterFile && { counterFile: config.rollbackCounterFile };
  const fs = config.fs ?? NODE_FS;
  try {
    return { store: await LicenseStore.open({ dir, storageKey, ...counter, fs }) };
  } catch (err) {
    if (!isKeywardenError(err, 'STORE_FOREIGN_DEVICE')) throw err;
    const aside = `${dir}.foreign-${Date.now()}`;
    await fs.rename(dir, aside);
    return {
      store: await LicenseStore.open({ dir, storageKey, ...counter, fs }),
      problem: kwError(err.code, `${err.message}; moved aside to ${aside}`, { aside }, err),
    };
  }
}

/** How long a new license waits for a revocation list over MQTT when the pull brought none. */
const STALE_WAIT_MS = 3000;

/** Resolves once the client holds a fresh list, after `ms`, or when `signal` aborts. */
async function waitForList(
  client: FleetClient,
  nowMs: () => number,
  ms: number,
  signal?: AbortSignal,
): Promise<void> {
  const until = Date.now() + ms;
  while (client.isStale(nowMs()) && Date.now() < until && !signal?.aborted)
    await new Promise((r) => setTimeout(r, 50));
}
