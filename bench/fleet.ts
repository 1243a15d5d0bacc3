/**
 * `npm run bench -- fleet`: the fleet revocation channel at scale. A real Mosquitto on
 * loopback and N simulated devices (default 10,000) in this process, spread over worker
 * threads (default 2). Every device is a FleetClient (the agent's fleet code, minus media)
 * with its own MQTT connection, device id, device key and device certificate (issued by
 * the test operator root), an in-memory state store, MQTT 5.
 * - connect: time until the whole fleet is connected and subscribed (500 in flight);
 * - memory: RSS of this process and V8 heap of the worker threads per device (after GC),
 *   with the device keys minted (before) and the fleet connected (after);
 * - revocation: a publisher signs list n (buildRevocationList + the test PKI's fleet
 *   publisher key) and publishes it retained, QoS 1, at t0 (`fleet revoke`); every device
 *   verifies it, applies it (no-op) and publishes its ack, signed with its own key; a
 *   collector on `+/devices/+/ack` timestamps them. Latency p50/p99 and time to 50%, 99%,
 *   100% of acks, per round; target: 99% within 5 s. A sample of the acks is verified
 *   against the root (the signer's certificate must name the device that acked).
 * Scale with `--devices=N` and `--workers=N` (one argument each: the runner takes bare
 * words for suite names) or KEYWARDEN_BENCH_DEVICES / KEYWARDEN_BENCH_WORKERS.
 *
 * This module is also the worker's entry point (see the end of the file).
 */
import { generateKeyPairSync, sign, X509Certificate, webcrypto, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import 'reflect-metadata'; // before @peculiar/x509
import * as x509 from '@peculiar/x509';
import mqtt, { type MqttClient } from 'mqtt';
import { verifyCertificateChain } from '../src/crypto/cert-chain.js';
import { pkcs8Of, privateKeyFromPkcs8, signP256, spkiOf } from '../src/crypto/ecdsa.js';
import {
  FleetClient,
  MemoryFleetStateStore,
  revocationsTopic,
  sharedSignerCache,
} from '../src/fleet/index.js';
import {
  DEFAULT_LIST_INTERVAL_MS,
  buildRevocationList,
} from '../src/headend/fleet/revocation-lists.js';
import type { RevocationRow } from '../src/headend/store/repository.js';
import { decodeMessage, encodeMessage } from '../src/protocol/codec.js';
import { MessageType, signMessage, verifyMessage } from '../src/protocol/envelope.js';
import { keywarden } from '../src/protocol/generated/proto.js';
import { startMosquitto } from '../test/helpers/fleet-brokers.js';
import { keySigner, makeFleetPki } from '../test/helpers/fleet-pki.js';

const v1 = keywarden.v1;
const PREFIX = 'keywarden';
const WAVE = 500;
const KEEPALIVE_S = 120;
const ROUNDS = 3;
const TARGET_P99_MS = 5000;
const CONNECT_TIMEOUT_MS = 300_000;
const ROUND_TIMEOUT_MS = 60_000;
/** Device ids: `bench-` and 6 digits (fixed length: the certificate template relies on it). */
const ID_DIGITS = 6;

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** The value below which a fraction q of `sorted` lies (nearest rank). */
const rank = (sorted: number[], q: number): number =>
  sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
const median = (xs: number[]): number =>
  rank(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
/** Wall-clock ms with sub-ms precision, comparable across threads. */
const clock = (): number => performance.timeOrigin + performance.now();
const deviceIdOf = (i: number): string => `bench-${String(i).padStart(ID_DIGITS, '0')}`;

function intOption(name: string, env: string, fallback: number): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  const raw = arg?.slice(name.length + 3) ?? process.env[env] ?? String(fallback);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`bad ${name} '${raw}'`);
  return n;
}

/** A full GC (V8 flag set at run time), so the memory figures are live objects. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
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

// ---- device certificates ------------------------------------------------------------
//
// @peculiar/x509 takes ~3-5 ms per certificate, 30-50 s for the fleet. The bench instead
// issues one template certificate (CN bench-000000) and derives each device's from it:
// serial, CN and public key are replaced in the TBSCertificate (same lengths), which the
// root key then signs, as a CA would. Each result is an ordinary certificate under the root.

/** A template device certificate and where its variable fields sit in the TBS. */
interface CertTemplate {
  readonly tbs: Uint8Array;
  /** AlgorithmIdentifier (ecdsa-with-SHA256) of the outer Certificate, DER. */
  readonly sigAlg: Uint8Array;
  readonly serialAt: number;
  readonly serialLength: number;
  readonly cnAt: number;
  readonly spkiAt: number;
  readonly spkiLength: number;
}

/** DER tag + length header at `at`: where the content starts and how long it is. */
function derItem(der: Uint8Array, at: number): { start: number; length: number; end: number } {
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[at + 2 + i]!;
    start += n;
  }
  return { start, length: len, end: start + len };
}

function derHeader(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  if (length < 0x100) return Buffer.from([tag, 0x81, length]);
  return Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
}

const SERIAL = Buffer.from('0100000000000000', 'hex');

async function makeCertTemplate(root: {
  name: string;
  cryptoKeys: webcrypto.CryptoKeyPair;
}): Promise<CertTemplate> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: SERIAL.toString('hex'),
    subject: `CN=${deviceIdOf(0)}`,
    issuer: root.name,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 365 * 86_400_000),
    signingAlgorithm: alg,
    publicKey: keys.publicKey,
    signingKey: root.cryptoKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ],
  });
  const der = Buffer.from(cert.rawData);
  const outer = derItem(der, 0);
  const tbsItem = derItem(der, outer.start);
  const tbs = der.subarray(outer.start, tbsItem.end);
  const sigAlgItem = derItem(der, tbsItem.end);
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const at = (needle: Buffer): number => {
    const i = tbs.indexOf(needle);
    if (i < 0 || tbs.indexOf(needle, i + 1) >= 0) throw new Error('template field not unique');
    return i;
  };
  const template: CertTemplate = {
    tbs: Uint8Array.from(tbs),
    sigAlg: Uint8Array.from(der.subarray(tbsItem.end, sigAlgItem.end)),
    serialAt: at(SERIAL),
    serialLength: SERIAL.length,
    cnAt: at(Buffer.from(deviceIdOf(0))),
    spkiAt: at(spki),
    spkiLength: spki.length,
  };
  return template;
}

/** A device key and its certificate from the template, signed by `rootKey`. */
function mintDevice(
  t: CertTemplate,
  rootKey: KeyObject,
  index: number,
): { privateKey: KeyObject; certDer: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = spkiOf(publicKey);
  if (spki.length !== t.spkiLength) throw new Error('unexpected SPKI length');
  const tbs = Buffer.from(t.tbs);
  tbs.writeUInt32BE(index, t.serialAt + t.serialLength - 4);
  tbs.write(deviceIdOf(index), t.cnAt, 'latin1');
  tbs.set(spki, t.spkiAt);
  const sig = sign('sha256', tbs, { key: rootKey, dsaEncoding: 'der' });
  const bits = Buffer.concat([derHeader(0x03, sig.length + 1), Buffer.from([0]), sig]);
  const body = Buffer.concat([tbs, t.sigAlg, bits]);
  return {
    privateKey,
    certDer: new Uint8Array(Buffer.concat([derHeader(0x30, body.length), body])),
  };
}

// ---- worker side ----------------------------------------------------------------------

interface WorkerInput {
  readonly fleetBenchWorker: true;
  readonly url: string;
  readonly rootDer: Uint8Array;
  readonly rootKeyPkcs8: Uint8Array;
  readonly template: CertTemplate;
  readonly first: number;
  readonly count: number;
  readonly inFlight: number;
}

type ToWorker =
  | { type: 'mint' }
  | { type: 'connect' }
  | { type: 'memory' }
  | { type: 'round'; number: number }
  | { type: 'round-end'; number: number }
  | { type: 'stop' };

type FromWorker =
  | { type: 'loaded' }
  | { type: 'minted'; ms: number }
  | {
      type: 'connected';
      connected: number;
      failed: number;
      reconnects: number;
      connectMs: number[];
    }
  | { type: 'memory'; heapUsed: number }
  | { type: 'round-ready' }
  | {
      type: 'round-end';
      signedAt: number[];
      applied: number;
      chainCache: { hits: number; misses: number };
    }
  | { type: 'stopped' };

async function workerMain(input: WorkerInput): Promise<void> {
  const port = parentPort!;
  const post = (m: FromWorker): void => port.postMessage(m);
  const trustedRoot = new X509Certificate(input.rootDer);
  const rootKey = privateKeyFromPkcs8(input.rootKeyPkcs8);
  const clients: FleetClient[] = [];
  let devices: { id: string; privateKey: KeyObject; certDer: Uint8Array }[] = [];
  /** Absolute times at which acks were signed (during a round). */
  let signedAt: number[] | undefined;

  const mint = (): void => {
    const t = performance.now();
    devices = [];
    for (let k = 0; k < input.count; k++) {
      const i = input.first + k;
      devices.push({ id: deviceIdOf(i), ...mintDevice(input.template, rootKey, i) });
    }
    // The derived certificates are real ones: the first must chain to the root.
    const first = devices[0];
    if (first) {
      const { leaf } = verifyCertificateChain([first.certDer], trustedRoot, Date.now());
      if (!leaf.subject.includes(`CN=${first.id}`)) throw new Error('bad derived certificate');
    }
    post({ type: 'minted', ms: performance.now() - t });
  };

  const connect = async (): Promise<void> => {
    let connected = 0;
    let failed = 0;
    let reconnects = 0;
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const connectMs: number[] = [];
    const release = (): void => {
      inFlight--;
      wake?.();
    };
    const t0 = performance.now();
    for (const d of devices) {
      while (inFlight >= input.inFlight) await new Promise<void>((r) => (wake = r));
      if (performance.now() - t0 > CONNECT_TIMEOUT_MS) break;
      inFlight++;
      const client = new FleetClient({
        url: input.url,
        deviceId: d.id,
        topicPrefix: PREFIX,
        protocolVersion: 5,
        trustedRoot,
        signer: {
          chain: [d.certDer],
          sign: (data: Uint8Array) => {
            const out = signP256(d.privateKey, data);
            signedAt?.push(clock());
            return out;
          },
        },
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
    while (connected + failed < clients.length && performance.now() - t0 < CONNECT_TIMEOUT_MS)
      await sleep(20);
    post({ type: 'connected', connected, failed, reconnects, connectMs });
  };

  port.on('message', (m: ToWorker) => {
    void (async () => {
      switch (m.type) {
        case 'mint':
          mint();
          break;
        case 'connect':
          await connect();
          break;
        case 'memory':
          collectGarbage();
          post({ type: 'memory', heapUsed: process.memoryUsage().heapUsed });
          break;
        case 'round':
          signedAt = [];
          post({ type: 'round-ready' });
          break;
        case 'round-end': {
          const s = sharedSignerCache.stats();
          post({
            type: 'round-end',
            signedAt: signedAt ?? [],
            applied: clients.filter((c) => c.appliedListNumber === m.number).length,
            chainCache: { hits: s.hits, misses: s.misses },
          });
          signedAt = undefined;
          break;
        }
        case 'stop':
          for (let i = 0; i < clients.length; i += 1000)
            await Promise.all(
              clients
                .slice(i, i + 1000)
                .map((c) => c.stop({ publishOffline: false }).catch(() => {})),
            );
          post({ type: 'stopped' });
          port.close();
          break;
      }
    })();
  });
  post({ type: 'loaded' });
}

// ---- main side ------------------------------------------------------------------------

/** A worker thread and a way to ask it something and wait for the answer. */
class FleetWorker {
  private readonly waiting = new Map<string, ((m: FromWorker) => void)[]>();
  private failure: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on('message', (m: FromWorker) => {
      const queue = this.waiting.get(m.type);
      queue?.shift()?.(m);
    });
    worker.on('error', (err) => {
      this.failure = err;
      for (const q of this.waiting.values()) for (const f of q) f({ type: 'stopped' });
    });
  }

  next<T extends FromWorker['type']>(type: T): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const q = this.waiting.get(type) ?? [];
      q.push((m) =>
        this.failure ? reject(this.failure) : resolve(m as Extract<FromWorker, { type: T }>),
      );
      this.waiting.set(type, q);
    });
  }

  ask<T extends FromWorker['type']>(
    msg: ToWorker,
    reply: T,
  ): Promise<Extract<FromWorker, { type: T }>> {
    const answer = this.next(reply);
    this.worker.postMessage(msg);
    return answer;
  }
}

/** Starts a worker running this module under tsx (workers do not inherit the loader). */
function spawnWorker(input: WorkerInput): FleetWorker {
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
  return new FleetWorker(new Worker(code, { eval: true, workerData: input }));
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
    // Every 100th ack, up to 100, for verification after the round.
    if (c.seen.size % Math.max(1, Math.floor(devices / 100)) === 1 && c.raw.length < 100)
      c.raw.push(payload);
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

/**
 * Verifies sample acks like the head-end does: the envelope against the root, and the
 * signer's certificate must name the device the ack is from. Returns how many passed and
 * how many distinct signer keys they used.
 */
function verifyAcks(raw: Buffer[], root: Uint8Array): { ok: number; distinctKeys: number } {
  let ok = 0;
  const keys = new Set<string>();
  for (const payload of raw) {
    const v = verifyMessage(payload, MessageType.FLEET_ACK, { trustedRoot: root });
    const ack = decodeMessage(v1.CommandAck, v.payload, 'CommandAck');
    if (ack.ok && v.signerCert?.subject === `CN=${ack.deviceId}`) ok++;
    keys.add(Buffer.from(spkiOf(v.signerKey)).toString('base64'));
  }
  return { ok, distinctKeys: keys.size };
}

/** The fleet bench. */
export async function runFleet(): Promise<Record<string, unknown>> {
  const n = intOption('devices', 'KEYWARDEN_BENCH_DEVICES', 10_000);
  const workerCount = Math.min(n, intOption('workers', 'KEYWARDEN_BENCH_WORKERS', 2));
  const loadBefore = os.loadavg().map((x) => round(x, 2));
  const wallStart = performance.now();
  const pki = await makeFleetPki('bench-device');
  const template = await makeCertTemplate(pki.root);
  const broker = await startMosquitto({
    fileLimit: 65536,
    // No connection cap, no per-client queue caps (the collector gets N acks per round).
    extraConfig: ['max_connections -1', 'max_queued_messages 0', 'max_inflight_messages 0'],
  });
  const workers: FleetWorker[] = [];
  let collector: Collector | undefined;
  let publisher: MqttClient | undefined;
  try {
    const brokerFdLimit = await openFileLimit(broker.pid());
    const ownFdLimit = await openFileLimit(process.pid);
    console.error(
      `bench fleet: ${n} devices on ${workerCount} worker threads, mosquitto at ${broker.url} (fd limit ${brokerFdLimit}, ours ${ownFdLimit}), load ${loadBefore.join(' ')}`,
    );
    if (n + 100 > Math.min(brokerFdLimit, ownFdLimit))
      console.error('bench fleet: warning, the fd limit is below the device count');
    collector = await startCollector(broker.url, n);
    publisher = await mqtt.connectAsync(broker.url, {
      clientId: 'bench-publisher',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });

    // ---- workers, device keys ---------------------------------------------------------
    const rssOf = (): number => {
      collectGarbage();
      return process.memoryUsage().rss;
    };
    const heapOfWorkers = async (): Promise<number> =>
      (await Promise.all(workers.map((w) => w.ask({ type: 'memory' }, 'memory')))).reduce(
        (a, m) => a + m.heapUsed,
        0,
      );
    const rssNoWorkers = rssOf();
    const per = Math.ceil(n / workerCount);
    const loaded: Promise<unknown>[] = [];
    for (let w = 0; w < workerCount; w++) {
      const first = w * per;
      const worker = spawnWorker({
        fleetBenchWorker: true,
        url: broker.url,
        rootDer: pki.root.der,
        rootKeyPkcs8: pkcs8Of(pki.root.privateKey),
        template,
        first,
        count: Math.max(0, Math.min(per, n - first)),
        inFlight: Math.ceil(WAVE / workerCount),
      });
      workers.push(worker);
      loaded.push(worker.next('loaded'));
    }
    await Promise.all(loaded);
    const rssWorkers = rssOf();
    const heapWorkers = await heapOfWorkers();
    const tMint = performance.now();
    const minted = await Promise.all(workers.map((w) => w.ask({ type: 'mint' }, 'minted')));
    const mintMs = performance.now() - tMint;
    const rssMinted = rssOf();
    const heapMinted = await heapOfWorkers();
    console.error(
      `bench fleet: ${n} device keys and certificates in ${Math.round(mintMs)} ms (${minted.map((m) => Math.round(m.ms)).join(' + ')} ms on the workers)`,
    );

    // ---- connect the fleet ------------------------------------------------------------
    const tConnect = performance.now();
    const done = await Promise.all(workers.map((w) => w.ask({ type: 'connect' }, 'connected')));
    const fleetConnectMs = performance.now() - tConnect;
    const connected = done.reduce((a, d) => a + d.connected, 0);
    const failed = done.reduce((a, d) => a + d.failed, 0);
    const reconnects = done.reduce((a, d) => a + d.reconnects, 0);
    const connectMs = done.flatMap((d) => d.connectMs).sort((a, b) => a - b);
    await sleep(1000); // let the SUBACKs and first timers settle before measuring
    const rssAfter = rssOf();
    const heapAfter = await heapOfWorkers();
    const mosqRssKiB = await procStatus(broker.pid(), 'VmRSS');
    const connect = {
      devices: n,
      workers: workerCount,
      connected,
      failed,
      fleetMs: Math.round(fleetConnectMs),
      perSecond: Math.round(connected / (fleetConnectMs / 1000)),
      inFlight: WAVE,
      keepaliveS: KEEPALIVE_S,
      reconnects,
      deviceConnectP50Ms: round(rank(connectMs, 0.5)),
      deviceConnectP99Ms: round(rank(connectMs, 0.99)),
    };
    console.error(`bench fleet: ${connected}/${n} connected in ${connect.fleetMs} ms`);
    const MiB = (b: number): number => round(b / 2 ** 20);
    const perDevKiB = (b: number): number => round(b / 1024 / Math.max(1, connected));
    const mem = {
      rssNoWorkersMiB: MiB(rssNoWorkers),
      rssWorkersMiB: MiB(rssWorkers),
      rssKeysMintedMiB: MiB(rssMinted),
      rssConnectedMiB: MiB(rssAfter),
      /** Per device: client, connection, store (RSS from keys minted to connected). */
      rssPerDeviceKiB: perDevKiB(rssAfter - rssMinted),
      /** Per device, its key and certificate included (RSS from workers up to connected). */
      rssPerDeviceWithKeyKiB: perDevKiB(rssAfter - rssWorkers),
      heapPerDeviceKiB: perDevKiB(heapAfter - heapMinted),
      heapPerDeviceWithKeyKiB: perDevKiB(heapAfter - heapWorkers),
      workerOverheadMiB: MiB((rssWorkers - rssNoWorkers) / workerCount),
      mosquittoRssMiB: MiB(mosqRssKiB * 1024),
      mosquittoPerDeviceKiB: round(mosqRssKiB / Math.max(1, connected)),
    };
    console.error(
      `bench fleet: ${mem.rssPerDeviceKiB} KiB RSS (${mem.rssPerDeviceWithKeyKiB} with its key), ${mem.heapPerDeviceKiB} KiB heap per device`,
    );
    if (connected < n) throw new Error(`only ${connected}/${n} devices connected`);

    // ---- revocation rounds ------------------------------------------------------------
    const rounds: Record<string, unknown>[] = [];
    const entries: RevocationRow[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      const number = r;
      await Promise.all(workers.map((w) => w.ask({ type: 'round', number }, 'round-ready')));
      const t0 = performance.now();
      const t0Abs = clock();
      const cpu0 = process.cpuUsage();
      const mosqCpu0 = await procCpuMs(broker.pid());
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
      const mosqCpuMs = (await procCpuMs(broker.pid())) - mosqCpu0;
      const ends = await Promise.all(
        workers.map((w) => w.ask({ type: 'round-end', number }, 'round-end')),
      );
      const signedAt = ends.flatMap((e) => e.signedAt.map((t) => t - t0Abs)).sort((a, b) => a - b);
      const applied = ends.reduce((a, e) => a + e.applied, 0);
      latencies.sort((a, b) => a - b);
      const acked = latencies.length;
      // Time to x% of the fleet (a missing ack counts as never).
      const toFraction = (q: number): number | null => {
        const need = Math.ceil(q * n);
        return need <= acked ? Math.round(latencies[need - 1]!) : null;
      };
      const sample = verifyAcks(raw, pki.root.der);
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
          acksSigned: signedAt.length,
          to50Ms: Math.round(rank(signedAt, 0.5)),
          to99Ms: Math.round(rank(signedAt, 0.99)),
          to100Ms: Math.round(signedAt[signedAt.length - 1] ?? NaN),
        },
        benchCpuMs: Math.round((cpu.user + cpu.system) / 1000),
        benchCpuPerDeviceMs: round((cpu.user + cpu.system) / 1000 / n, 3),
        mosquittoCpuMs: Math.round(mosqCpuMs),
        chainCache: {
          hits: ends.reduce((a, e) => a + e.chainCache.hits, 0),
          misses: ends.reduce((a, e) => a + e.chainCache.misses, 0),
        },
        sampleAcksVerified: `${sample.ok}/${raw.length}`,
        sampleDistinctSignerKeys: sample.distinctKeys,
        met99Within5s: to99 !== null && to99 <= TARGET_P99_MS,
      };
      console.error(
        `bench fleet: list ${number}: ${acked}/${n} acks, p50 ${result.latencyP50Ms} ms, 99% in ${to99} ms, all in ${result.to100Ms} ms`,
      );
      rounds.push(result);
      await sleep(2000);
    }

    const ms = (k: string): number[] => rounds.map((x) => Number(x[k]));
    return {
      summary: {
        connectMs: connect.fleetMs,
        rssPerDeviceKiB: mem.rssPerDeviceKiB,
        rssPerDeviceWithKeyKiB: mem.rssPerDeviceWithKeyKiB,
        medianOfRounds: {
          latencyP50Ms: median(ms('latencyP50Ms')),
          latencyP99Ms: median(ms('latencyP99Ms')),
          to99Ms: median(ms('to99Ms')),
        },
        targetTo99Ms: TARGET_P99_MS,
        met: rounds.every((x) => x.met99Within5s === true),
      },
      connect,
      memory: mem,
      revocation: { rounds },
      setup: {
        broker: 'mosquitto (max_connections -1, max_queued_messages 0, max_inflight_messages 0)',
        brokerFdLimit,
        processFdLimit: ownFdLimit,
        mqtt: 'MQTT 5, QoS 1, retained list, clean=false sessions',
        devices: `${n} FleetClients on ${workerCount} worker threads, each with its own connection, device key and certificate`,
        cores: os.cpus().length,
        loadAvgBefore: loadBefore,
        loadAvgAfter: os.loadavg().map((x) => round(x, 2)),
      },
      wallMs: Math.round(performance.now() - wallStart),
    };
  } finally {
    const tStop = performance.now();
    await Promise.all(
      workers.map(async (w) => {
        await w.ask({ type: 'stop' }, 'stopped').catch(() => {});
        await w.worker.terminate();
      }),
    );
    await publisher?.endAsync(true).catch(() => {});
    await collector?.client.endAsync(true).catch(() => {});
    await broker.stop();
    await broker.dispose?.();
    console.error(
      `bench fleet: ${n} clients closed, mosquitto stopped in ${Math.round(performance.now() - tStop)} ms`,
    );
  }
}

if (!isMainThread && (workerData as Partial<WorkerInput> | null)?.fleetBenchWorker === true)
  await workerMain(workerData as WorkerInput);
