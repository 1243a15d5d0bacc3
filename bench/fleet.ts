/**
 * `npm run bench -- fleet`: the fleet revocation channel at scale. A real Mosquitto on
 * loopback and N simulated devices (default 10,000) in this process, each a FleetClient (the
 * agent's fleet code, minus media) with its own device id, an in-memory state store, MQTT 5.
 * - connect: time until the whole fleet is connected and subscribed (waves of 500 in flight);
 * - memory: RSS and V8 heap of this process per device (after GC, before/after the fleet);
 * - revocation: a publisher signs list n (buildRevocationList + the test PKI's fleet publisher
 *   key) and publishes it retained, QoS 1, at t0; every device verifies, applies (no-op) and
 *   publishes its signed ack; a collector on `+/devices/+/ack` timestamps them. Time to 50%,
 *   99%, 100% of acks, per round; target: 99% within 5 s.
 * Scale down with `--devices=N` (one argument: the runner takes bare words for suite names)
 * or KEYWARDEN_BENCH_DEVICES=N.
 *
 * To keep CPU sane every device signs its acks with one shared device key and certificate
 * (the test PKI's device); each ack still carries its own device id.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import mqtt, { type MqttClient } from 'mqtt';
import {
  DEFAULT_LIST_INTERVAL_MS,
  buildRevocationList,
} from '../src/headend/fleet/revocation-lists.js';
import type { RevocationRow } from '../src/headend/store/repository.js';
import { FleetClient, MemoryFleetStateStore, revocationsTopic } from '../src/fleet/index.js';
import { decodeMessage, encodeMessage } from '../src/protocol/codec.js';
import { MessageType, signMessage, verifyMessage } from '../src/protocol/envelope.js';
import { keywarden } from '../src/protocol/generated/proto.js';
import { freePort } from '../test/helpers/fleet-brokers.js';
import { deviceSigner, keySigner, makeFleetPki } from '../test/helpers/fleet-pki.js';

const v1 = keywarden.v1;
const PREFIX = 'keywarden';
const WAVE = 500;
const KEEPALIVE_S = 120;
const ROUNDS = 3;
const TARGET_P99_MS = 5000;
const CONNECT_TIMEOUT_MS = 300_000;
const ROUND_TIMEOUT_MS = 60_000;

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** The value below which a fraction q of `sorted` lies (nearest rank). */
const rank = (sorted: number[], q: number): number =>
  sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;

function deviceCount(): number {
  const arg = process.argv.find((a) => a.startsWith('--devices='));
  const raw = arg?.slice('--devices='.length) ?? process.env.KEYWARDEN_BENCH_DEVICES ?? '10000';
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`bad device count '${raw}'`);
  return n;
}

/** A full GC (V8 flag set at run time), so the memory figures are live objects. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function memory(): { rss: number; heap: number } {
  collectGarbage();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

async function procStatus(pid: number | undefined, field: string): Promise<number> {
  if (pid === undefined) return NaN;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
}

async function openFileLimit(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8').catch(() => '');
  return Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? NaN);
}

/** CPU time (user + system) of a process, ms, from /proc/pid/stat. */
async function procCpuMs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

interface Broker {
  readonly url: string;
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

/** Mosquitto with no connection cap and no per-client queue caps (the collector gets N acks). */
async function startBroker(): Promise<Broker> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kw-bench-mosq-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest none',
      'max_connections -1',
      'max_queued_messages 0',
      'max_inflight_messages 0',
      '',
    ].join('\n'),
  );
  // Raise the fd limit as far as allowed (up to 65536), then become mosquitto.
  const script =
    'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec mosquitto -c "$1"';
  const proc = spawn('sh', ['-c', script, 'sh', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const url = `mqtt://127.0.0.1:${port}`;
  const end = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited ${proc.exitCode}: ${err}`);
    try {
      const probe = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1000 });
      await probe.endAsync(true);
      break;
    } catch (e) {
      if (Date.now() > end) throw e;
      await sleep(50);
    }
  }
  return {
    url,
    proc,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise<void>((r) => proc.once('exit', () => r()));
        proc.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

interface Collector {
  readonly client: MqttClient;
  /** Starts counting acks of list `number`; resolves when all N came or on timeout. */
  expect(number: number, t0: number): Promise<{ latencies: number[]; raw: Buffer[] }>;
}

/** The head-end side: one MQTT 5 client on `+/devices/+/ack`, timestamps acks on arrival. */
async function startCollector(url: string, devices: number): Promise<Collector> {
  const client = await mqtt.connectAsync(url, {
    clientId: 'bench-collector',
    protocolVersion: 5,
    reconnectPeriod: 0,
    properties: { receiveMaximum: 65535 },
  });
  await client.subscribeAsync('+/devices/+/ack', { qos: 1 });
  let current:
    | {
        number: number;
        t0: number;
        seen: Set<string>;
        latencies: number[];
        raw: Buffer[];
        done: () => void;
      }
    | undefined;
  client.on('message', (_topic, payload) => {
    const at = performance.now();
    const c = current;
    if (!c) return;
    // Routing only: decode without verifying (a sample is verified after the round).
    const envelope = decodeMessage(v1.SignedMessage, payload, 'SignedMessage');
    const body = decodeMessage(v1.SignedBody, envelope.body, 'SignedBody');
    const ack = decodeMessage(v1.CommandAck, body.payload, 'CommandAck');
    if (!ack.ok || Number(ack.listNumber) !== c.number || c.seen.has(ack.deviceId)) return;
    c.seen.add(ack.deviceId);
    c.latencies.push(at - c.t0);
    if (c.raw.length < 100) c.raw.push(payload);
    if (c.seen.size === devices) c.done();
  });
  return {
    client,
    expect(number, t0) {
      return new Promise((resolve) => {
        const state = {
          number,
          t0,
          seen: new Set<string>(),
          latencies: [] as number[],
          raw: [] as Buffer[],
          done: () => {
            clearTimeout(timer);
            current = undefined;
            resolve({ latencies: state.latencies, raw: state.raw });
          },
        };
        const timer = setTimeout(() => state.done(), ROUND_TIMEOUT_MS);
        current = state;
      });
    },
  };
}

/** The fleet bench. */
export async function runFleet(): Promise<Record<string, unknown>> {
  const n = deviceCount();
  const wallStart = performance.now();
  const pki = await makeFleetPki('bench-device');
  const trustedRoot = new X509Certificate(pki.root.der);
  // Shared by every device (see the header); it also timestamps each ack as it is signed,
  // after verify + apply, right before the device publishes it (the in-process view).
  const shared = deviceSigner(pki);
  let signedAt: number[] | undefined;
  let signT0 = 0;
  const signer = {
    chain: shared.chain,
    sign: (data: Uint8Array) => {
      const out = shared.sign(data);
      signedAt?.push(performance.now() - signT0);
      return out;
    },
  };
  const broker = await startBroker();
  const clients: FleetClient[] = [];
  let collector: Collector | undefined;
  let publisher: MqttClient | undefined;
  try {
    const brokerFdLimit = await openFileLimit(broker.proc.pid);
    const ownFdLimit = await openFileLimit(process.pid);
    console.error(
      `bench fleet: ${n} devices, mosquitto at ${broker.url} (fd limit ${brokerFdLimit}, ours ${ownFdLimit})`,
    );
    if (n + 100 > Math.min(brokerFdLimit, ownFdLimit))
      console.error('bench fleet: warning, the fd limit is below the device count');
    collector = await startCollector(broker.url, n);
    publisher = await mqtt.connectAsync(broker.url, {
      clientId: 'bench-publisher',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });

    // ---- connect the fleet ------------------------------------------------------------
    const before = memory();
    let connected = 0;
    let failed = 0;
    let reconnects = 0;
    const connectMs: number[] = [];
    const tConnect = performance.now();
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const release = (): void => {
      inFlight--;
      wake?.();
    };
    for (let i = 0; i < n; i++) {
      while (inFlight >= WAVE) await new Promise<void>((r) => (wake = r));
      if (performance.now() - tConnect > CONNECT_TIMEOUT_MS) break;
      inFlight++;
      const deviceId = `bench-${String(i).padStart(6, '0')}`;
      const client = new FleetClient({
        url: broker.url,
        deviceId,
        topicPrefix: PREFIX,
        protocolVersion: 5,
        trustedRoot,
        signer,
        store: new MemoryFleetStateStore(),
        applyRevocationList: () => Promise.resolve(),
        keepaliveS: KEEPALIVE_S,
        sessionExpiryS: 600,
        reconnect: { initialDelayMs: 500, maxDelayMs: 5000 },
      });
      clients.push(client);
      const t = performance.now();
      client.once('connected', () => {
        connected++;
        connectMs.push(performance.now() - t);
        release();
      });
      client.on('reconnecting', () => reconnects++);
      client.start().catch(() => {
        failed++;
        release();
      });
    }
    const deadline = tConnect + CONNECT_TIMEOUT_MS;
    while (connected + failed < clients.length && performance.now() < deadline) await sleep(20);
    const fleetConnectMs = performance.now() - tConnect;
    await sleep(1000); // let the SUBACKs and first timers settle before measuring
    const after = memory();
    const mosqRssKiB = await procStatus(broker.proc.pid, 'VmRSS');
    connectMs.sort((a, b) => a - b);
    const connect = {
      devices: n,
      connected,
      fleetMs: Math.round(fleetConnectMs),
      perSecond: Math.round(connected / (fleetConnectMs / 1000)),
      wave: WAVE,
      keepaliveS: KEEPALIVE_S,
      reconnects,
      deviceConnectP50Ms: round(rank(connectMs, 0.5)),
      deviceConnectP99Ms: round(rank(connectMs, 0.99)),
    };
    console.error(`bench fleet: ${connected}/${n} connected in ${connect.fleetMs} ms`);
    const mem = {
      rssBeforeMiB: round(before.rss / 2 ** 20),
      rssAfterMiB: round(after.rss / 2 ** 20),
      heapBeforeMiB: round(before.heap / 2 ** 20),
      heapAfterMiB: round(after.heap / 2 ** 20),
      rssPerDeviceKiB: round((after.rss - before.rss) / 1024 / Math.max(1, connected)),
      heapPerDeviceKiB: round((after.heap - before.heap) / 1024 / Math.max(1, connected)),
      mosquittoRssMiB: round(mosqRssKiB / 1024),
      mosquittoPerDeviceKiB: round(mosqRssKiB / Math.max(1, connected)),
    };
    console.error(
      `bench fleet: ${mem.rssPerDeviceKiB} KiB RSS, ${mem.heapPerDeviceKiB} KiB heap per device`,
    );
    if (connected < clients.length) throw new Error(`only ${connected}/${n} devices connected`);

    // ---- revocation rounds ------------------------------------------------------------
    const rounds: Record<string, unknown>[] = [];
    const entries: RevocationRow[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      const number = r;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const mosqCpu0 = await procCpuMs(broker.proc.pid);
      signedAt = [];
      signT0 = t0;
      const pending = collector.expect(number, t0);
      // `fleet revoke`: record the entry, build and sign the next list, publish it.
      const now = Date.now();
      entries.push({
        kind: 'device',
        value: `dev-revoked-${r}`,
        revokedAt: now,
        reason: 'bench',
        revision: r,
      });
      const list = buildRevocationList({
        previousNumber: number - 1,
        issuedAt: now,
        intervalMs: DEFAULT_LIST_INTERVAL_MS,
        entries,
        minAgentVersion: '',
      });
      const signed = signMessage(
        MessageType.FLEET_REVOCATION_LIST,
        encodeMessage(v1.RevocationList, list),
        keySigner(pki.publisher),
        { nowMs: now },
      );
      await publisher.publishAsync(revocationsTopic(PREFIX), Buffer.from(signed), {
        qos: 1,
        retain: true,
      });
      const publishedMs = performance.now() - t0;
      const { latencies, raw } = await pending;
      const cpu = process.cpuUsage(cpu0);
      const mosqCpuMs = (await procCpuMs(broker.proc.pid)) - mosqCpu0;
      const signed_ = signedAt.sort((a, b) => a - b);
      signedAt = undefined;
      latencies.sort((a, b) => a - b);
      const acked = latencies.length;
      // Time to x% of the fleet (a missing ack counts as never).
      const toFraction = (q: number): number | null => {
        const need = Math.ceil(q * n);
        return need <= acked ? Math.round(latencies[need - 1]!) : null;
      };
      let verified = 0;
      for (const payload of raw) {
        const v = verifyMessage(payload, MessageType.FLEET_ACK, { trustedRoot: pki.root.der });
        if (decodeMessage(v1.CommandAck, v.payload, 'CommandAck').ok) verified++;
      }
      const applied = clients.filter((c) => c.appliedListNumber === number).length;
      const to99 = toFraction(0.99);
      const result = {
        list: number,
        listBytes: signed.length,
        publishMs: round(publishedMs),
        acked,
        applied,
        to50Ms: toFraction(0.5),
        to99Ms: to99,
        to100Ms: toFraction(1),
        latencyP50Ms: round(rank(latencies, 0.5)),
        latencyP99Ms: round(rank(latencies, 0.99)),
        latencyMaxMs: round(latencies[acked - 1] ?? NaN),
        deviceSide: {
          acksSigned: signed_.length,
          to50Ms: Math.round(rank(signed_, 0.5)),
          to99Ms: Math.round(rank(signed_, 0.99)),
          to100Ms: Math.round(signed_[signed_.length - 1] ?? NaN),
        },
        benchCpuMs: Math.round((cpu.user + cpu.system) / 1000),
        benchCpuPerDeviceMs: round((cpu.user + cpu.system) / 1000 / n, 3),
        mosquittoCpuMs: Math.round(mosqCpuMs),
        sampleAcksVerified: `${verified}/${raw.length}`,
        met99Within5s: to99 !== null && to99 <= TARGET_P99_MS,
      };
      console.error(
        `bench fleet: list ${number}: ${acked}/${n} acks, 99% in ${to99} ms, all in ${result.to100Ms} ms`,
      );
      rounds.push(result);
      await sleep(2000);
    }

    return {
      connect,
      memory: mem,
      revocation: {
        rounds,
        targetTo99Ms: TARGET_P99_MS,
        met: rounds.every((x) => x.met99Within5s === true),
      },
      setup: {
        broker: 'mosquitto (max_connections -1, max_queued_messages 0, max_inflight_messages 0)',
        brokerFdLimit,
        processFdLimit: ownFdLimit,
        mqtt: 'MQTT 5, QoS 1, retained list, clean=false sessions',
        signer: 'all devices sign acks with one shared device key/certificate',
        cores: os.cpus().length,
      },
      wallMs: Math.round(performance.now() - wallStart),
    };
  } finally {
    const tStop = performance.now();
    for (let i = 0; i < clients.length; i += 1000) {
      await Promise.all(
        clients.slice(i, i + 1000).map((c) => c.stop({ publishOffline: false }).catch(() => {})),
      );
    }
    await publisher?.endAsync(true).catch(() => {});
    await collector?.client.endAsync(true).catch(() => {});
    await broker.stop();
    console.error(
      `bench fleet: ${clients.length} clients closed, mosquitto stopped in ${Math.round(performance.now() - tStop)} ms`,
    );
  }
}
