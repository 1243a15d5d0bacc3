import { connectAsync, type MqttClient } from 'mqtt';
import { isKeywardenError, kwError } from '../../errors/index.js';
import { encodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import type { FleetCommandRow } from '../store/repository.js';
import { ackOf, statusOf, verifyDeviceMessage } from './device-messages.js';
import { DEFAULT_LIST_INTERVAL_MS, RevocationLists } from './revocation-lists.js';

const v1 = keywarden.v1;

/** Default topic prefix. */
export const DEFAULT_FLEET_PREFIX = 'keywarden';
/** How often the publisher looks for new lists and queued commands (ms). */
export const DEFAULT_POLL_MS = 500;
/** Retained statuses may be old: their order is decided by the report time instead. */
const STATUS_MAX_AGE_MS = 365 * 86400_000;
/** The unsigned marker a device's last will publishes on its status topic. */
const OFFLINE_MARKER = 'offline';

/** Options of {@link FleetPublisher.start}. */
export interface PublisherOptions {
  /** Topic prefix; default 'keywarden'. */
  readonly prefix?: string;
  readonly pollMs?: number;
  /** Validity of each list (next_update - issued_at); default 24 h. */
  readonly listIntervalMs?: number;
  /** MQTT client id; default keywarden-headend-PID. */
  readonly clientId?: string;
  /** Diagnostics (rejected device messages, publish failures). */
  readonly log?: (line: string) => void;
}

/** Topic names under a prefix. */
export function fleetTopics(prefix: string): {
  revocations: string;
  cmd: (deviceId: string) => string;
  ackFilter: string;
  statusFilter: string;
} {
  const p = prefix.replace(/\/+$/, '');
  return {
    revocations: `${p}/fleet/revocations`,
    cmd: (id) => `${p}/devices/${id}/cmd`,
    ackFilter: `${p}/devices/+/ack`,
    statusFilter: `${p}/devices/+/status`,
  };
}

/**
 * The fleet publisher (one per head-end, in the cluster's primary): an MQTT client that
 * publishes the latest signed revocation list retained (QoS 1) whenever its number changes,
 * publishes queued commands, and records the devices' signed acks and statuses. It polls
 * the store, so that `keywarden fleet revoke|command` run in another process (writing the
 * same database) is published within one poll interval.
 */
export class FleetPublisher {
  private readonly topics: ReturnType<typeof fleetTopics>;
  private readonly lists: RevocationLists;
  private readonly log: (line: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private inbox: Promise<void> = Promise.resolve();
  private closed = false;
  /** Number of the list last published on this connection (0: none). */
  private publishedNumber = 0;

  private constructor(
    private readonly ctx: HeadendContext,
    private readonly client: MqttClient,
    readonly prefix: string,
    opts: PublisherOptions,
  ) {
    this.topics = fleetTopics(prefix);
    this.lists = new RevocationLists(ctx, opts.listIntervalMs ?? DEFAULT_LIST_INTERVAL_MS);
    this.log = opts.log ?? (() => undefined);
  }

  /** Connects to the broker at `url`, subscribes, publishes the current list, starts polling. */
  static async start(
    ctx: HeadendContext,
    url: string,
    opts: PublisherOptions = {},
  ): Promise<FleetPublisher> {
    const prefix = opts.prefix ?? DEFAULT_FLEET_PREFIX;
    if (prefix === '' || /[+#]/.test(prefix))
      throw kwError('CLI_USAGE', `'${prefix}' is not a valid MQTT topic prefix`);
    let client: MqttClient;
    try {
      client = await connectAsync(url, {
        clientId: opts.clientId ?? `keywarden-headend-${process.pid}`,
        protocolVersion: 4,
        clean: true,
        reconnectPeriod: 1000,
        connectTimeout: 10_000,
      });
    } catch (err) {
      throw kwError(
        'HEADEND_INTERNAL',
        `cannot connect to the MQTT broker ${url}: ${(err as Error).message}`,
        {},
        err,
      );
    }
    const p = new FleetPublisher(ctx, client, prefix, opts);
    client.on('message', (topic, payload) => {
      p.inbox = p.inbox.then(() => p.onMessage(topic, payload)).catch(() => undefined);
    });
    client.on('connect', () => {
      // A reconnect: the broker may have lost the retained list (restart); publish again.
      p.publishedNumber = 0;
      void p.tick();
    });
    client.on('error', (err) => p.log(`fleet: mqtt: ${err.message}`));
    await client.subscribeAsync([p.topics.ackFilter, p.topics.statusFilter], { qos: 1 });
    await p.tick();
    const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
    p.timer = setInterval(() => void p.tick(), pollMs);
    p.timer.unref();
    return p;
  }

  /** One poll: issue a list if due, publish it if new, publish queued commands. */
  tick(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return (this.ticking ??= this.poll()
      .catch((err: unknown) => this.log(`fleet: ${(err as Error).message}`))
      .finally(() => {
        this.ticking = undefined;
      }));
  }

  private async poll(): Promise<void> {
    if (!this.client.connected) return;
    const list = await this.lists.issue();
    if (list.number !== this.publishedNumber) {
      await this.client.publishAsync(this.topics.revocations, list.signed, {
        qos: 1,
        retain: true,
      });
      this.publishedNumber = list.number;
    }
    const queued = await this.ctx.store.pendingFleetCommands(this.ctx.clock(), {
      unpublishedOnly: true,
    });
    for (const c of queued) await this.publishCommand(c);
  }

  /** Signs (fresh nonce) and publishes one command, QoS 1, and marks it published. */
  private async publishCommand(c: FleetCommandRow): Promise<void> {
    const now = this.ctx.clock();
    const payload = encodeMessage(
      v1.FleetCommand,
      v1.FleetCommand.create({
        id: c.id,
        deviceId: c.deviceId,
        action: c.action,
        argument: c.argument,
        expiresAtMs: c.expiresAt,
      }),
    );
    const signed = signMessage(MessageType.FLEET_COMMAND, payload, this.ctx.pki.signer('fleet'), {
      nowMs: now,
    });
    await this.client.publishAsync(this.topics.cmd(c.deviceId), Buffer.from(signed), { qos: 1 });
    await this.ctx.store.markFleetCommandPublished(c.id, now);
  }

  private deviceOfTopic(topic: string): { id: string; kind: 'ack' | 'status' } | undefined {
    const rest = topic.startsWith(`${this.prefix}/devices/`)
      ? topic.slice(this.prefix.length + '/devices/'.length).split('/')
      : [];
    const [id, kind] = rest;
    if (rest.length !== 2 || !id || (kind !== 'ack' && kind !== 'status')) return undefined;
    return { id, kind };
  }

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    const target = this.deviceOfTopic(topic);
    if (!target || payload.length === 0) return;
    try {
      if (target.kind === 'status') await this.onStatus(target.id, payload);
      else await this.onAck(target.id, payload);
    } catch (err) {
      const why = isKeywardenError(err) ? `${err.code}: ${err.message}` : String(err);
      this.log(`fleet: rejected ${target.kind} of ${target.id}: ${why}`);
    }
  }

  private async onStatus(deviceId: string, payload: Buffer): Promise<void> {
    const now = this.ctx.clock();
    if (payload.toString('utf8').trim().toLowerCase() === OFFLINE_MARKER)
      return this.ctx.store.markDeviceOffline(deviceId, now);
    const m = await verifyDeviceMessage(
      this.ctx,
      payload,
      MessageType.FLEET_STATUS,
      deviceId,
      STATUS_MAX_AGE_MS,
    );
    const st = statusOf(m);
    const reportedAt = Number(st.reportedAtMs) || m.verified.timestamp;
    const outcome = await this.ctx.store.recordDeviceStatus({
      deviceId,
      online: st.online,
      agentVersion: st.agentVersion,
      licenseCount: st.licenseCount,
      listNumber: Number(st.listNumber),
      outputStatus: st.outputStatus,
      reportedAt,
      at: now,
    });
    // A device coming (back) online gets the commands it has not acked yet (idempotent).
    if (outcome === 'recorded' && st.online) {
      const pending = await this.ctx.store.pendingFleetCommands(now, { deviceId });
      for (const c of pending) await this.publishCommand(c);
    }
  }

  private async onAck(deviceId: string, payload: Buffer): Promise<void> {
    const now = this.ctx.clock();
    const m = await verifyDeviceMessage(
      this.ctx,
      payload,
      MessageType.FLEET_ACK,
      deviceId,
      this.ctx.settings.maxSkewMs,
    );
    await this.ctx.nonces.checkAndRemember(m.verified.nonce, m.verified.timestamp, now);
    const ack = ackOf(m);
    await this.ctx.store.recordFleetAck({
      deviceId,
      commandId: ack.commandId,
      ok: ack.ok,
      errorCode: ack.errorCode,
      message: ack.message,
      listNumber: Number(ack.listNumber),
      at: now,
    });
  }

  /** Stops polling and disconnects (waits for the poll and messages in progress). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.ticking;
    await this.inbox;
    await this.client.endAsync();
  }
}
