import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FleetClient,
  fleetTopics,
  isOfflineMarker,
  MemoryFleetStateStore,
  revocationsTopic,
  type FleetClientOptions,
  type RejectedEvent,
  type RevocationListEvent,
} from '../../src/fleet/index.js';
import { decodeMessage } from '../../src/protocol/codec.js';
import { MessageType, verifyMessage } from '../../src/protocol/envelope.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import {
  hasMosquitto,
  hasNatsServer,
  startAedes,
  startMosquitto,
  startNats,
  startTcpRelay,
  type TestBroker,
} from '../helpers/fleet-brokers.js';
import {
  deviceSigner,
  makeFleetPki,
  signedCommand,
  signedList,
  type FleetPki,
} from '../helpers/fleet-pki.js';

const v1 = keywarden.v1;

/** Resolves on the first message on `topic` matching `pred`. */
function nextMessage(
  client: MqttClient,
  topic: string,
  pred: (payload: Buffer) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', on);
      reject(new Error(`no message on ${topic}`));
    }, timeoutMs);
    const on = (t: string, payload: Buffer): void => {
      if (t !== topic || !pred(payload)) return;
      clearTimeout(timer);
      client.off('message', on);
      resolve(payload);
    };
    client.on('message', on);
  });
}

function waitEvent<T>(
  emitter: NodeJS.EventEmitter,
  event: string,
  pred: (arg: T) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no ${event} event`));
    }, timeoutMs);
    const on = (arg: T): void => {
      if (!pred(arg)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(arg);
    };
    emitter.on(event, on);
  });
}

function decodeAck(pki: FleetPki, bytes: Buffer): keywarden.v1.CommandAck {
  const verified = verifyMessage(bytes, MessageType.FLEET_ACK, { trustedRoot: pki.root.der });
  return decodeMessage(v1.CommandAck, verified.payload, 'CommandAck');
}

interface Harness {
  readonly client: FleetClient;
  readonly applied: number[];
  readonly commands: string[];
  readonly store: MemoryFleetStateStore;
}

function suite(
  name: string,
  makeBroker: () => Promise<TestBroker>,
  protocolVersion: 4 | 5,
  available: () => boolean,
): void {
  describe.skipIf(!available())(
    `fleet client over ${name}, MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}`,
    () => {
      let pki: FleetPki;
      let broker: TestBroker;
      let publisher: MqttClient;
      const prefix = `kw-${name}-${protocolVersion}`;
      const started: FleetClient[] = [];
      let http: Server;
      let httpList: Uint8Array | undefined;
      let httpUrl = '';
      let httpHits = 0;

      function startDevice(deviceId: string, extra: Partial<FleetClientOptions> = {}): Harness {
        const applied: number[] = [];
        const commands: string[] = [];
        const store =
          (extra.store as MemoryFleetStateStore | undefined) ?? new MemoryFleetStateStore();
        const client = new FleetClient({
          url: broker.url,
          deviceId,
          topicPrefix: prefix,
          protocolVersion,
          trustedRoot: pki.root.der,
          signer: deviceSigner(pki),
          store,
          applyRevocationList: (_list, number) => {
            applied.push(number);
            return Promise.resolve();
          },
          onCommand: (cmd) => {
            commands.push(cmd.id);
            return Promise.resolve({ ok: true, message: `done ${cmd.argument}` });
          },
          reconnect: { initialDelayMs: 100, maxDelayMs: 400 },
          ...extra,
        });
        started.push(client);
        return { client, applied, commands, store };
      }

      async function publish(topic: string, bytes: Uint8Array, retain = false): Promise<void> {
        await publisher.publishAsync(topic, Buffer.from(bytes), { qos: 1, retain });
      }

      async function connectPublisher(): Promise<MqttClient> {
        const c = await mqtt.connectAsync(broker.url, {
          clientId: `${prefix}-publisher`,
          protocolVersion: 4,
          reconnectPeriod: 200,
        });
        await c.subscribeAsync(`${prefix}/devices/+/+`, { qos: 1 });
        return c;
      }

      beforeAll(async () => {
        pki = await makeFleetPki('dev-0001');
        broker = await makeBroker();
        publisher = await connectPublisher();
        http = createServer((req, res) => {
          httpHits++;
          if (req.url !== '/v1/fleet/revocations' || httpList === undefined) {
            res.writeHead(404).end();
            return;
          }
          res
            .writeHead(200, { 'content-type': 'application/x-protobuf' })
            .end(Buffer.from(httpList));
        });
        await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
        httpUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}/v1/fleet/revocations`;
      });

      afterAll(async () => {
        for (const c of started) await c.stop();
        await publisher?.endAsync(true);
        await broker?.stop();
        await broker?.dispose?.();
        await new Promise<void>((r) => http?.close(() => r()));
      });

      it('applies a signed list and acks it, signed by the device', async () => {
        const dev = startDevice('dev-0001');
        const connected = waitEvent(dev.client, 'connected');
        await dev.client.start();
        await connected;
        const ackMsg = nextMessage(publisher, dev.client.topics.ack);
        await publish(revocationsTopic(prefix), signedList(pki.publisher, 1), true);
        const ack = decodeAck(pki, await ackMsg);
        expect(ack).toMatchObject({ ok: true, deviceId: 'dev-0001', commandId: '' });
        expect(Number(ack.listNumber)).toBe(1);
        expect(dev.applied).toEqual([1]);
        expect(dev.client.appliedListNumber).toBe(1);
        expect((await dev.store.get())?.listNumber).toBe(1);
        expect(dev.client.isStale(Date.now())).toBe(false);
        expect(dev.client.isStale(Date.now() + 2 * 86_400_000)).toBe(true);
      });

      it('publishes a signed retained status; the last will is the offline marker', async () => {
        const dev = started[0]!;
        const topic = dev.topics.status;
        const statusMsg = nextMessage(publisher, topic, (p) => !isOfflineMarker(p));
        await dev.publishStatus({ agentVersion: '0.1.0', licenseCount: 3 });
        const verified = verifyMessage(await statusMsg, MessageType.FLEET_STATUS, {
          trustedRoot: pki.root.der,
        });
        const status = decodeMessage(v1.DeviceStatus, verified.payload, 'DeviceStatus');
        expect(status).toMatchObject({ deviceId: 'dev-0001', online: true, licenseCount: 3 });
        expect(Number(status.listNumber)).toBe(1);
      });

      it('a device connecting later gets the retained list', async () => {
        const late = startDevice('dev-0002');
        const ackMsg = nextMessage(publisher, late.client.topics.ack);
        await late.client.start();
        const ack = decodeAck(pki, await ackMsg);
        expect(ack.deviceId).toBe('dev-0002');
        expect(late.applied).toEqual([1]);
        await late.client.stop({ publishOffline: false });
      });

      it('runs a command and acks it; a replay is refused and nothing is run twice', async () => {
        const dev = started[0]!;
        const topics = fleetTopics(prefix, 'dev-0001');
        const cmd = signedCommand(pki.publisher, { id: 'cmd-42', argument: 'lic-9' });
        const ackMsg = nextMessage(
          publisher,
          topics.ack,
          (p) => decodeAck(pki, p).commandId === 'cmd-42',
        );
        await publish(topics.command, cmd);
        const ack = decodeAck(pki, await ackMsg);
        expect(ack).toMatchObject({ ok: true, commandId: 'cmd-42', message: 'done lic-9' });
        const rejected = waitEvent<RejectedEvent>(dev, 'rejected');
        const nack = nextMessage(
          publisher,
          topics.ack,
          (p) => decodeAck(pki, p).commandId === 'cmd-42',
        );
        await publish(topics.command, cmd);
        expect((await rejected).error.code).toBe('NONCE_REPLAYED');
        expect(decodeAck(pki, await nack).ok).toBe(false);
        expect(dev.counters().rejectedByCode.NONCE_REPLAYED).toBe(1);
      });

      it('ignores a forged list and keeps running', async () => {
        const dev = started[0]!;
        const rejected = waitEvent<RejectedEvent>(dev, 'rejected');
        await publish(revocationsTopic(prefix), signedList(pki.otherPublisher, 50), true);
        expect((await rejected).error.code).toBe('CERT_UNTRUSTED_ROOT');
        const forgedByDevice = waitEvent<RejectedEvent>(dev, 'rejected');
        await publish(revocationsTopic(prefix), signedList(pki.device, 51), true);
        expect((await forgedByDevice).error.code).toBe('FLEET_SIGNER_NOT_PUBLISHER');
        expect(dev.appliedListNumber).toBe(1);
        const ackMsg = nextMessage(
          publisher,
          dev.topics.ack,
          (p) => Number(decodeAck(pki, p).listNumber) === 2,
        );
        await publish(revocationsTopic(prefix), signedList(pki.publisher, 2), true);
        await ackMsg;
        expect(dev.appliedListNumber).toBe(2);
      });

      it('reconnects after a broker restart and still gets a newer list', async () => {
        const dev = started[0]!;
        const disconnected = waitEvent(dev, 'disconnected');
        await broker.stop();
        await disconnected;
        await publisher.endAsync(true);
        const reconnected = waitEvent(dev, 'connected');
        await broker.start();
        await reconnected;
        publisher = await connectPublisher();
        const ackMsg = nextMessage(
          publisher,
          dev.topics.ack,
          (p) => Number(decodeAck(pki, p).listNumber) === 3,
        );
        await publish(revocationsTopic(prefix), signedList(pki.publisher, 3), true);
        await ackMsg;
        expect(dev.appliedListNumber).toBe(3);
      });

      it('a refused apply is not recorded and is retried; a restored state acks duplicates', async () => {
        let refuse = true;
        const dev = startDevice('dev-0004', {
          applyRevocationList: () =>
            refuse
              ? Promise.resolve({ ok: false, errorCode: 6010, message: 'busy' })
              : Promise.resolve(),
        });
        const nack = nextMessage(publisher, dev.client.topics.ack);
        await dev.client.start();
        const first = decodeAck(pki, await nack);
        expect(first).toMatchObject({ ok: false, errorCode: 6010 });
        expect(dev.client.appliedListNumber).toBe(0);
        expect(await dev.store.get()).toBeUndefined();
        refuse = false;
        const ok = nextMessage(publisher, dev.client.topics.ack, (p) => decodeAck(pki, p).ok);
        await publish(revocationsTopic(prefix), signedList(pki.publisher, 4), true);
        expect(Number(decodeAck(pki, await ok).listNumber)).toBe(4);
        await dev.client.stop({ publishOffline: false });

        // Same device, state restored: the retained list 4 is a duplicate, acked, not applied.
        const again = startDevice('dev-0004');
        await again.store.set((await dev.store.get())!);
        const dup = nextMessage(publisher, again.client.topics.ack);
        await again.client.start();
        expect(decodeAck(pki, await dup)).toMatchObject({ ok: true, message: 'already applied' });
        expect(again.applied).toEqual([]);
        expect(again.client.counters().listsDuplicate).toBe(1);
        await again.client.stop({ publishOffline: false });
      });

      it('a device offline while a list and a command are published gets both when it reconnects', async () => {
        const dev = startDevice('dev-0005');
        const topics = dev.client.topics;
        const firstAck = nextMessage(publisher, topics.ack);
        await dev.client.start();
        await firstAck; // the retained list of the earlier tests, applied
        const before = dev.client.appliedListNumber;
        expect(before).toBeGreaterThan(0);
        await dev.client.stop({ publishOffline: false });

        // While it is offline: a newer list (retained) and a command (queued in its session).
        const n = before + 1;
        await publish(revocationsTopic(prefix), signedList(pki.publisher, n), true);
        await publish(
          topics.command,
          signedCommand(pki.publisher, { id: 'cmd-offline', deviceId: 'dev-0005', argument: 'x' }),
        );

        // The agent restarts: a new client on the same state.
        const again = startDevice('dev-0005', { store: dev.store });
        const listAck = nextMessage(publisher, topics.ack, (p) => {
          const a = decodeAck(pki, p);
          return a.commandId === '' && Number(a.listNumber) === n;
        });
        const cmdAck = nextMessage(
          publisher,
          topics.ack,
          (p) => decodeAck(pki, p).commandId === 'cmd-offline',
        );
        const connected = waitEvent<boolean>(again.client, 'connected');
        await again.client.start();
        expect(await connected, 'the broker kept the session').toBe(true);
        expect(decodeAck(pki, await listAck).ok).toBe(true);
        expect(decodeAck(pki, await cmdAck)).toMatchObject({ ok: true, message: 'done x' });
        expect(again.applied).toEqual([n]);
        expect(again.commands).toEqual(['cmd-offline']);
        expect((await again.store.get())?.listNumber).toBe(n);
        await again.client.stop({ publishOffline: false });
      });

      it('a command acknowledged to the broker but not run before the agent stopped runs at the next start', async () => {
        // The first agent dies inside the command: it never finishes.
        const dev = startDevice('dev-0006', { onCommand: () => new Promise(() => undefined) });
        const topics = dev.client.topics;
        const connected = waitEvent<boolean>(dev.client, 'connected');
        await dev.client.start();
        await connected;
        await publish(
          topics.command,
          signedCommand(pki.publisher, { id: 'cmd-inflight', deviceId: 'dev-0006', argument: 'y' }),
        );
        // The broker has its ack once the command is in the durable inbox.
        const deadline = Date.now() + 5000;
        while (((await dev.store.get())?.inbox?.length ?? 0) === 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 20));
        expect((await dev.store.get())?.inbox).toHaveLength(1);
        void dev.client.stop({ publishOffline: false }); // its queue never drains: a dead agent

        const again = startDevice('dev-0006', { store: dev.store });
        const cmdAck = nextMessage(
          publisher,
          topics.ack,
          (p) => decodeAck(pki, p).commandId === 'cmd-inflight',
        );
        await again.client.start();
        expect(decodeAck(pki, await cmdAck)).toMatchObject({ ok: true, message: 'done y' });
        await new Promise((r) => setTimeout(r, 300)); // a redelivery would come now
        expect(again.commands).toEqual(['cmd-inflight']); // once: the broker does not resend it
        expect((await again.store.get())?.inbox ?? []).toEqual([]);
        await again.client.stop({ publishOffline: false });
      });

      it('the broker publishes the offline marker when the connection drops; the device comes back', async () => {
        const relay = await startTcpRelay(broker.port);
        try {
          const dev = startDevice('dev-0006', { url: relay.url });
          const topic = dev.client.topics.status;
          const connected = waitEvent(dev.client, 'connected');
          await dev.client.start();
          await connected;
          const online = nextMessage(publisher, topic, (p) => !isOfflineMarker(p));
          await dev.client.publishStatus({ agentVersion: 'x' });
          await online;
          const offline = nextMessage(publisher, topic, isOfflineMarker);
          const back = nextMessage(publisher, topic, (p) => !isOfflineMarker(p));
          relay.cut(); // no DISCONNECT: the broker sends the will
          expect(Buffer.from(await offline).toString()).toBe('offline');
          // It reconnects (through the relay, still listening) and republishes its status.
          await back;
          expect(dev.client.connected).toBe(true);
          await dev.client.stop({ publishOffline: false });
        } finally {
          await relay.close();
        }
      });

      it('pulls the list over HTTP on connect and on refresh()', async () => {
        httpList = signedList(pki.publisher, 7);
        const dev = startDevice('dev-0003', { pullUrl: httpUrl });
        const applied = waitEvent<{ number: number; source: string }>(
          dev.client,
          'revocation-list',
          (e) => e.number === 7,
        );
        await dev.client.start();
        expect((await applied).source).toBe('http');
        httpList = signedList(pki.otherPublisher, 8);
        const rejected = waitEvent<RejectedEvent>(
          dev.client,
          'rejected',
          (e) => e.source === 'http',
        );
        await dev.client.refresh();
        expect((await rejected).error.code).toBe('CERT_UNTRUSTED_ROOT');
        expect(dev.client.appliedListNumber).toBe(7);
        await dev.client.stop();
      });

      it('while the broker is down, the list still comes over HTTP at the reconnect pace', async () => {
        httpList = undefined;
        const dev = startDevice('dev-0007', { pullUrl: httpUrl });
        const connected = waitEvent(dev.client, 'connected');
        await dev.client.start();
        await connected;
        let attempts = 0;
        dev.client.on('reconnecting', () => attempts++);
        const disconnected = waitEvent(dev.client, 'disconnected');
        await publisher.endAsync(true);
        await broker.stop();
        await disconnected;
        // Revoked while the broker is down: only the head-end's HTTP endpoint has it.
        const hits0 = httpHits;
        httpList = signedList(pki.publisher, 100);
        const got = await waitEvent<RevocationListEvent>(
          dev.client,
          'revocation-list',
          (e) => e.number === 100,
        );
        expect(got.source).toBe('http');
        expect(dev.client.connected).toBe(false);
        await expect.poll(() => dev.client.appliedListNumber).toBe(100);
        expect(dev.applied).toContain(100);
        // One pull per lost connection or failed attempt, not more.
        await new Promise((r) => setTimeout(r, 500));
        expect(httpHits - hits0).toBeGreaterThan(0);
        expect(httpHits - hits0).toBeLessThanOrEqual(attempts);

        const reconnected = waitEvent(dev.client, 'connected');
        await broker.start();
        await reconnected;
        publisher = await connectPublisher();
        await dev.client.stop();
      });
    },
  );
}

suite('aedes', startAedes, 4, () => true);
suite('mosquitto', startMosquitto, 5, hasMosquitto);
suite('mosquitto', startMosquitto, 4, hasMosquitto);
suite('nats', startNats, 4, hasNatsServer);
