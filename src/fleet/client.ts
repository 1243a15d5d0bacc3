import { EventEmitter } from 'node:events';
import type { X509Certificate } from 'node:crypto';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import { isKeywardenError, kwError, type KeywardenError } from '../errors/index.js';
import { encodeMessage } from '../protocol/codec.js';
import { MessageType, signMessageWith, type CallbackSigner } from '../protocol/envelope.js';
import { keywarden } from '../protocol/generated/proto.js';
import { pullRevocationList, type PullOptions } from './pull.js';
import {
  CommandNonceSet,
  DEFAULT_MAX_NONCES,
  MAX_INBOX,
  MAX_INBOX_ENTRY_CHARS,
  EMPTY_FLEET_STATE,
  parseFleetState,
  type FleetState,
  type FleetStateStore,
} from './state.js';
import { fleetTopics, OFFLINE_MARKER, type FleetTopics } from './topics.js';
import {
  FleetVerifier,
  type FleetCounters,
  type VerifiedRevocationList,
  type FleetVerifierOptions,
} from './verify.js';

const v1 = keywarden.v1;
/** How long stop() waits for the broker to take the offline marker. */
const STOP_PUBLISH_TIMEOUT_MS = 2000;
const OFFLINE_MARKER_BYTES = Buffer.from(OFFLINE_MARKER);

/** Result of the agent's apply handlers; `void` means applied. */
export interface FleetApplyOutcome {
  readonly ok: boolean;
  /** Catalogue number of the failure (0 when ok). */
  readonly errorCode?: number;
  readonly message?: string;
}

/** Where a revocation list came from. */
export type ListSource = 'mqtt' | 'http';

/** Jittered exponential backoff of reconnects. */
export interface ReconnectPolicy {
  /** First delay, ms; default 1000. */
  readonly initialDelayMs?: number;
  /** Cap, ms; default 60,000. */
  readonly maxDelayMs?: number;
  /** Growth per failed attempt; default 2. */
  readonly factor?: number;
}

/** TLS settings passed to mqtt.js (mqtts:// URLs): mTLS with the device's broker credentials. */
export interface FleetTlsOptions {
  readonly ca?: string | Buffer | (string | Buffer)[];
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly rejectUnauthorized?: boolean;
  readonly servername?: string;
}

/** Options of a {@link FleetClient}. */
export interface FleetClientOptions extends Omit<FleetVerifierOptions, 'trustedRoot'> {
  /** Broker URL: mqtt://host:1883, mqtts://host:8883. */
  readonly url: string;
  /** This device's id: the MQTT client id and the {id} of its topics. */
  readonly deviceId: string;
  /** Topic prefix; default "keywarden". */
  readonly topicPrefix?: string;
  /** MQTT 5 (default) or 4 (3.1.1). */
  readonly protocolVersion?: 4 | 5;
  /** The operator root fleet messages must chain to. */
  readonly trustedRoot: Uint8Array | X509Certificate;
  /** Signs acks and status with the device key; chain = device certificate chain. */
  readonly signer: CallbackSigner;
  /** Persists the applied list number and seen command nonces (the agent seals it). */
  readonly store: FleetStateStore;
  /** Applies a new revocation list; throw or return ok=false to refuse it (it is retried). */
  readonly applyRevocationList: (
    list: keywarden.v1.RevocationList,
    number: number,
  ) => Promise<FleetApplyOutcome | void>;
  /** Runs a verified command; absent = every command is answered "unsupported". */
  readonly onCommand?: (command: keywarden.v1.FleetCommand) => Promise<FleetApplyOutcome | void>;
  /** Trusted time (the secure clock), ms since the epoch; default Date.now. */
  readonly now?: () => number;
  /** Full URL of the head-end's GET /v1/fleet/revocations; pulled on every connect. */
  readonly pullUrl?: string | URL;
  /** Options of the HTTP pull. */
  readonly pull?: Omit<PullOptions, 'signal'>;
  readonly tls?: FleetTlsOptions;
  readonly username?: string;
  readonly password?: string | Buffer;
  /** MQTT keepalive, s; default 30. */
  readonly keepaliveS?: number;
  /** MQTT 5 session expiry, s; default 7 days (3.1.1 sessions live until the broker drops them). */
  readonly sessionExpiryS?: number;
  /** Connect timeout, ms; default 30,000. */
  readonly connectTimeoutMs?: number;
  readonly reconnect?: ReconnectPolicy;
  /** Command nonces remembered; default 1024. */
  readonly maxNonces?: number;
  /** Random source for the jitter (tests); default Math.random. */
  readonly random?: () => number;
}

/** A delivered and verified revocation list ('revocation-list' event). */
export interface RevocationListEvent {
  readonly list: keywarden.v1.RevocationList;
  readonly number: number;
  readonly source: ListSource;
}

/** A refused message ('rejected' event): nothing was applied. */
export interface RejectedEvent {
  readonly kind: 'list' | 'command' | 'pull';
  readonly source: ListSource;
  readonly error: KeywardenError;
}

/** The signed ack a device published ('ack' event). */
export interface AckEvent {
  readonly ack: keywarden.v1.CommandAck;
}

/** Status fields the agent provides; the client fills device id, online, list number, time. */
export type StatusInput = Omit<
  keywarden.v1.IDeviceStatus,
  'deviceId' | 'online' | 'listNumber' | 'reportedAtMs'
>;

/**
 * Computes the n-th reconnect delay (n ≥ 0): "equal jitter", half fixed and half random,
 * of min(max, initial × factor^n), so a fleet reconnecting after a broker restart spreads out.
 */
export function backoffDelay(
  attempt: number,
  policy: ReconnectPolicy = {},
  random: () => number = Math.random,
): number {
  const initial = policy.initialDelayMs ?? 1000;
  const max = policy.maxDelayMs ?? 60_000;
  const factor = policy.factor ?? 2;
  const base = Math.min(max, initial * factor ** Math.min(attempt, 64));
  return Math.round(base / 2 + (base / 2) * random());
}

function outcomeOf(result: FleetApplyOutcome | void): FleetApplyOutcome {
  return result ?? { ok: true };
}

function outcomeOfError(err: unknown): FleetApplyOutcome {
  return isKeywardenError(err)
    ? { ok: false, errorCode: err.number, message: err.message }
    : { ok: false, errorCode: 0, message: err instanceof Error ? err.message : String(err) };
}

function asKeywardenError(err: unknown): KeywardenError {
  return isKeywardenError(err)
    ? err
    : kwError('PROTOCOL_ERROR', err instanceof Error ? err.message : String(err), {}, err);
}

/**
 * The device side of the fleet channel (docs/fleet.md). Events:
 * - `connected` (sessionPresent: boolean), after the subscriptions are granted;
 * - `disconnected`, `reconnecting` ({ attempt, delayMs });
 * - `revocation-list` (RevocationListEvent), before the apply handler runs;
 * - `command` (FleetCommand), before onCommand runs;
 * - `rejected` (RejectedEvent): a refused list/command or a failed pull, nothing applied;
 * - `ack` (AckEvent) once an ack is handed to the broker;
 * - `error` (Error): transport and storage problems (the client keeps running). A listener
 *   is installed so these never crash the process; add your own to log them.
 */
export class FleetClient extends EventEmitter {
  readonly topics: FleetTopics;
  private readonly verifier: FleetVerifier;
  private readonly now: () => number;
  private state: FleetState = EMPTY_FLEET_STATE;
  private nonces = new CommandNonceSet();
  private client: MqttClient | undefined;
  private queue: Promise<void> = Promise.resolve();
  private writes: Promise<void> = Promise.resolve();
  /** Commands received, not executed yet (FleetState.inbox). */
  private inbox: string[] = [];
  private stopped = true;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastStatus: StatusInput | undefined;
  private pullAbort: AbortController | undefined;

  constructor(private readonly opts: FleetClientOptions) {
    super();
    this.topics = fleetTopics(opts.topicPrefix ?? 'keywarden', opts.deviceId);
    this.verifier = new FleetVerifier({ ...opts, trustedRoot: opts.trustedRoot });
    this.now = opts.now ?? Date.now;
    this.on('error', () => undefined);
  }

  /** Loads the state and starts connecting (returns at once; see the `connected` event). */
  async start(): Promise<void> {
    if (!this.stopped) return;
    const stored = await this.opts.store.get();
    this.state = stored === undefined ? EMPTY_FLEET_STATE : parseFleetState(stored);
    this.nonces = new CommandNonceSet(
      this.state.nonces,
      this.state.nonceFloorMs,
      this.opts.maxNonces ?? DEFAULT_MAX_NONCES,
    );
    this.stopped = false;
    // Commands acknowledged to the broker but not executed before the last stop.
    this.inbox = [];
    for (const entry of this.state.inbox ?? []) this.receiveCommand(Buffer.from(entry, 'base64'));
    this.connect();
  }

  /**
   * Disconnects for good. By default first publishes the offline marker (the broker does not
   * send the will on a clean disconnect). Waits for the work in progress.
   */
  async stop(opts: { publishOffline?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.pullAbort?.abort();
    const client = this.client;
    this.client = undefined;
    if (client) {
      if (client.connected && opts.publishOffline !== false) {
        // A broker that vanishes right now never acknowledges: the will covers that case.
        await withinMs(
          publishWhileOpen(client, this.topics.status, OFFLINE_MARKER_BYTES, {
            qos: 1,
            retain: true,
          }),
          STOP_PUBLISH_TIMEOUT_MS,
        );
      }
      // A clean end waits for in-flight acknowledgements; a dead broker gives none.
      if (!client.connected || !(await withinMs(client.endAsync(false), STOP_PUBLISH_TIMEOUT_MS)))
        await client.endAsync(true);
    }
    await this.queue.catch(() => undefined);
  }

  /** True while connected to the broker. */
  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Number of the revocation list applied last (0 = none). */
  get appliedListNumber(): number {
    return this.state.listNumber;
  }

  /** True past the applied list's next_update_ms, or when no list was applied yet. */
  isStale(nowMs: number): boolean {
    if (this.state.listNumber === 0) return true;
    return this.state.listNextUpdateMs !== 0 && nowMs > this.state.listNextUpdateMs;
  }

  /** Verification counters (accepted, duplicate, rejected by code). */
  counters(): FleetCounters {
    return this.verifier.counters();
  }

  /**
   * Pulls the list over HTTP (pullUrl) and handles it like an MQTT delivery. Resolves once it
   * is applied or refused; a failure is reported as a `rejected` event, never thrown.
   */
  async refresh(): Promise<void> {
    const url = this.opts.pullUrl;
    if (url === undefined) return;
    this.pullAbort?.abort();
    const abort = new AbortController();
    this.pullAbort = abort;
    let bytes: Uint8Array | undefined;
    try {
      bytes = await pullRevocationList(url, { ...this.opts.pull, signal: abort.signal });
    } catch (err) {
      if (abort.signal.aborted) return;
      this.verifier.countRejection(err);
      this.emit('rejected', {
        kind: 'pull',
        source: 'http',
        error: asKeywardenError(err),
      } satisfies RejectedEvent);
      return;
    } finally {
      if (this.pullAbort === abort) this.pullAbort = undefined;
    }
    if (bytes !== undefined) await this.enqueue(() => this.handleList(bytes, 'http'));
  }

  /**
   * Publishes a signed, retained DeviceStatus (online = true). It is remembered and sent again
   * after every reconnect (the will may have replaced it). Resolves when the broker has it
   * (or at once when offline: it goes out on the next connect).
   */
  async publishStatus(status: StatusInput = {}): Promise<void> {
    this.lastStatus = status;
    const client = this.client;
    if (!client?.connected) return;
    await this.sendStatus(client, status);
  }

  private async sendStatus(client: MqttClient, status: StatusInput): Promise<void> {
    const msg = v1.DeviceStatus.create({
      ...status,
      deviceId: this.opts.deviceId,
      online: true,
      listNumber: this.state.listNumber,
      reportedAtMs: this.now(),
    });
    const bytes = await signMessageWith(
      MessageType.FLEET_STATUS,
      encodeMessage(v1.DeviceStatus, msg),
      this.opts.signer,
      { nowMs: this.now() },
    );
    await publishWhileOpen(client, this.topics.status, bytes, { qos: 1, retain: true });
  }

  // ---- connection -------------------------------------------------------------------

  private mqttOptions(): IClientOptions {
    const v5 = (this.opts.protocolVersion ?? 5) === 5;
    const tls = this.opts.tls ?? {};
    const maxPayload = this.opts.maxPayloadBytes ?? 1 << 20;
    return {
      clientId: this.opts.deviceId,
      protocolVersion: v5 ? 5 : 4,
      clean: false,
      // We reconnect ourselves (see scheduleReconnect): mqtt.js would retry at a fixed period.
      reconnectPeriod: 0,
      keepalive: this.opts.keepaliveS ?? 30,
      connectTimeout: this.opts.connectTimeoutMs ?? 30_000,
      resubscribe: false,
      ...(this.opts.username !== undefined ? { username: this.opts.username } : {}),
      ...(this.opts.password !== undefined ? { password: this.opts.password } : {}),
      ...tls,
      will: {
        topic: this.topics.status,
        payload: Buffer.from(OFFLINE_MARKER),
        qos: 1,
        retain: true,
      },
      ...(v5
        ? {
            properties: {
              sessionExpiryInterval: this.opts.sessionExpiryS ?? 7 * 86_400,
              // The broker must not send us anything we would refuse for size anyway.
              maximumPacketSize: maxPayload + 64 * 1024,
            },
          }
        : {}),
    } as IClientOptions;
  }

  private connect(): void {
    if (this.stopped) return;
    const client = mqtt.connect(this.opts.url, this.mqttOptions());
    this.client = client;
    client.on('connect', (connack) => {
      if (this.client !== client) return;
      void this.onConnect(client, connack.sessionPresent);
    });
    client.on('message', (topic, payload) => {
      if (this.client !== client) return;
      const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
      if (topic === this.topics.revocations)
        void this.enqueue(() => this.handleList(bytes, 'mqtt'));
      else if (topic === this.topics.command) this.receiveCommand(bytes);
    });
    // mqtt.js acknowledges a QoS 1 message once handleMessage calls back: a command is
    // acknowledged only after it is in the durable inbox, so a stop (or a crash) between
    // receipt and execution cannot lose it: the next start executes it.
    client.handleMessage = (packet, callback) => {
      if (packet.topic !== this.topics.command) return callback();
      this.persist().then(
        () => callback(),
        (err: unknown) => callback(err as Error),
      );
    };
    client.on('error', (err) => this.emit('error', err));
    client.on('close', () => {
      if (this.client !== client) return;
      this.emit('disconnected');
      // Drop this client (its in-flight QoS 1 publishes are repeated by our logic: status
      // on reconnect, lists by redelivery and pull); a fresh one reconnects.
      client.removeAllListeners('close');
      client.end(true);
      this.client = undefined;
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const delayMs = backoffDelay(this.attempt, this.opts.reconnect, this.opts.random);
    this.emit('reconnecting', { attempt: this.attempt, delayMs });
    this.attempt++;
    this.timer = setTimeout(() => this.connect(), delayMs);
    // Meanwhile the list still comes over HTTP: one pull per lost connection or failed
    // attempt, i.e. at the backoff's jittered pace (a pull in flight is not restarted).
    if (this.pullAbort === undefined) void this.refresh();
  }

  private async onConnect(client: MqttClient, sessionPresent: boolean): Promise<void> {
    try {
      const granted = await client.subscribeAsync(
        { [this.topics.revocations]: { qos: 1 }, [this.topics.command]: { qos: 1 } },
        {},
      );
      const refused = granted.find((g) => g.qos > 2);
      if (refused)
        throw kwError(
          'TRANSPORT_FAILED',
          `the broker refused the subscription to ${refused.topic}`,
        );
    } catch (err) {
      this.emit('error', err);
      client.end(true);
      return;
    }
    this.attempt = 0;
    this.emit('connected', sessionPresent);
    if (this.lastStatus !== undefined)
      this.sendStatus(client, this.lastStatus).catch((err: unknown) => this.emit('error', err));
    void this.refresh();
  }

  // ---- message handling (serialized) --------------------------------------------------

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task).catch((err: unknown) => {
      this.emit('error', err);
    });
    this.queue = run;
    return run;
  }

  private reject(kind: 'list' | 'command', source: ListSource, err: unknown): void {
    this.emit('rejected', { kind, source, error: asKeywardenError(err) } satisfies RejectedEvent);
  }

  private async handleList(bytes: Uint8Array, source: ListSource): Promise<void> {
    let verified: VerifiedRevocationList;
    try {
      verified = this.verifier.revocationList(bytes, {
        nowMs: this.now(),
        appliedNumber: this.state.listNumber,
      });
    } catch (err) {
      this.reject('list', source, err);
      return;
    }
    if (verified.kind === 'duplicate') {
      // Idempotent redelivery: nothing to apply; acknowledge MQTT deliveries again.
      if (source === 'mqtt') this.sendAck('', { ok: true, message: 'already applied' });
      return;
    }
    this.emit('revocation-list', {
      list: verified.list,
      number: verified.number,
      source,
    } satisfies RevocationListEvent);
    let outcome: FleetApplyOutcome;
    try {
      outcome = outcomeOf(await this.opts.applyRevocationList(verified.list, verified.number));
    } catch (err) {
      outcome = outcomeOfError(err);
    }
    if (outcome.ok) {
      await this.save({
        ...this.state,
        listNumber: verified.number,
        listIssuedAtMs: verified.issuedAtMs,
        listNextUpdateMs: verified.nextUpdateMs,
      });
    }
    this.sendAck('', outcome);
  }

  /** Puts a command in the inbox (persisted before the broker's ack) and queues its execution. */
  private receiveCommand(bytes: Uint8Array): void {
    const entry = Buffer.from(bytes).toString('base64');
    if (this.inbox.length < MAX_INBOX && entry.length <= MAX_INBOX_ENTRY_CHARS)
      this.inbox.push(entry);
    void this.enqueue(() => this.handleCommand(bytes).finally(() => this.takeFromInbox(entry)));
  }

  private async takeFromInbox(entry: string): Promise<void> {
    const i = this.inbox.indexOf(entry);
    if (i < 0) return;
    this.inbox.splice(i, 1);
    await this.persist();
  }

  private async handleCommand(bytes: Uint8Array): Promise<void> {
    const nowMs = this.now();
    let verified;
    try {
      verified = this.verifier.command(bytes, {
        nowMs,
        deviceId: this.opts.deviceId,
        nonces: this.nonces,
      });
    } catch (err) {
      this.reject('command', 'mqtt', err);
      const id = isKeywardenError(err) ? err.details.commandId : undefined;
      if (typeof id === 'string' && id !== '') this.sendAck(id, outcomeOfError(err));
      return;
    }
    const { command } = verified;
    this.emit('command', command);
    let outcome: FleetApplyOutcome;
    try {
      outcome = this.opts.onCommand
        ? outcomeOf(await this.opts.onCommand(command))
        : { ok: false, errorCode: 0, message: 'commands are not supported' };
    } catch (err) {
      outcome = outcomeOfError(err);
    }
    // Remembered whatever the outcome: the command was executed once, never again.
    this.nonces.remember(verified.nonce, verified.signedAtMs, verified.expiresAtMs, nowMs);
    await this.save({ ...this.state, ...this.nonces.snapshot() });
    this.sendAck(command.id, outcome);
  }

  private async save(next: FleetState): Promise<void> {
    this.state = next;
    await this.persist();
  }

  /**
   * Writes the state with the current inbox. Writes are serialized (the inbox is written
   * from mqtt.js's packet handling, outside the message queue), each writing the latest.
   */
  private persist(): Promise<void> {
    const write = this.writes.then(() =>
      this.opts.store.set({ ...this.state, inbox: [...this.inbox] }),
    );
    this.writes = write.catch(() => undefined);
    return write;
  }

  /** Signs and publishes an ack; never awaited by the handlers, failures go to 'error'. */
  private sendAck(commandId: string, outcome: FleetApplyOutcome): void {
    const ack = v1.CommandAck.create({
      commandId,
      deviceId: this.opts.deviceId,
      ok: outcome.ok,
      errorCode: outcome.ok ? 0 : (outcome.errorCode ?? 0),
      message: outcome.message ?? (outcome.ok ? 'applied' : 'refused'),
      listNumber: this.state.listNumber,
    });
    const client = this.client;
    if (!client) return;
    void (async () => {
      try {
        const bytes = await signMessageWith(
          MessageType.FLEET_ACK,
          encodeMessage(v1.CommandAck, ack),
          this.opts.signer,
          { nowMs: this.now() },
        );
        if ((await publishWhileOpen(client, this.topics.ack, bytes, { qos: 1 })) === 'sent')
          this.emit('ack', { ack } satisfies AckEvent);
      } catch (err) {
        this.emit('error', err);
      }
    })();
  }
}

/**
 * Publishes at QoS 1 and settles when the broker acknowledges ('sent') or the connection
 * closes first ('closed'). mqtt.js keeps an unacknowledged QoS 1 publish of a persistent
 * session for a resend that never comes here (each reconnect is a new client), so its own
 * callback would never run, and a caller awaiting it would wait for ever.
 */
function publishWhileOpen(
  client: MqttClient,
  topic: string,
  payload: Uint8Array,
  opts: IClientPublishOptions,
): Promise<'sent' | 'closed'> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => settle(() => resolve('closed'));
    const settle = (fn: () => void): void => {
      client.off('close', onClose);
      client.off('end', onClose);
      fn();
    };
    if (client.disconnecting || client.disconnected) return resolve('closed');
    client.once('close', onClose);
    client.once('end', onClose);
    client.publish(topic, Buffer.from(payload), opts, (err) =>
      settle(() => (err ? reject(err) : resolve('sent'))),
    );
  });
}

/** True when `p` settles (either way) within `ms`, false when the time runs out first. */
async function withinMs(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), ms))),
  ]);
  clearTimeout(timer);
  return done;
}
