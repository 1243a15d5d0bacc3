/**
 * Head-end benchmark: the head-end on cluster workers over loopback, the load generator in
 * this process. Licenses: 100 concurrent pre-provisioned devices, each on its own
 * keep-alive connection (as a real device: a shared pool would reuse its most recent
 * sockets first, which may all belong to one worker), each signing a fresh request (new
 * nonce) per license. Provisioning: fresh devices, fresh keys. Each phase has a warm-up,
 * then a fixed measuring window; latency is per request, from just before signing to the
 * full answer. Each phase also reports the generator's own event-loop delay, GC pauses and
 * CPU, so that a tail of the generator is not mistaken for one of the head-end.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { generateP256KeyPair, spkiOf } from '../src/crypto/ecdsa.js';
import { Headend, runHeadendCluster } from '../src/headend/index.js';
import { encodeMessage } from '../src/protocol/codec.js';
import { MessageType, signMessage, type KeySigner } from '../src/protocol/envelope.js';
import { keywarden } from '../src/protocol/generated/proto.js';

const v1 = keywarden.v1;
const KID = Buffer.alloc(16, 0x11);
const DEVICES = 100;
const WARMUP_MS = 2000;
const MEASURE_MS = 8000;
/** A request unanswered for this long counts as an error (a stuck worker cannot stall a phase). */
const REQUEST_TIMEOUT_MS = 10_000;

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
/** One connection per simulated device. */
const deviceAgents = Array.from(
  { length: DEVICES },
  () => new http.Agent({ keepAlive: true, maxSockets: 1 }),
);

function postRaw(
  url: URL,
  body: Uint8Array,
  via: http.Agent = agent,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: via,
        headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

function provisioningRequest(): Uint8Array {
  const key = generateP256KeyPair();
  const payload = encodeMessage(
    v1.ProvisioningRequest,
    v1.ProvisioningRequest.create({
      devicePublicKey: spkiOf(key.publicKey),
      hardwareIdDigest: createHash('sha256').update(randomBytes(16)).digest(),
      agentVersion: '1.0.0',
    }),
  );
  return signMessage(MessageType.PROVISIONING_REQUEST, payload, {
    privateKey: key.privateKey,
    chain: [],
  });
}

async function provisionDevice(url: URL): Promise<KeySigner> {
  const key = generateP256KeyPair();
  const payload = encodeMessage(
    v1.ProvisioningRequest,
    v1.ProvisioningRequest.create({
      devicePublicKey: spkiOf(key.publicKey),
      hardwareIdDigest: randomBytes(32),
      agentVersion: '1.0.0',
    }),
  );
  const res = await postRaw(
    url,
    signMessage(MessageType.PROVISIONING_REQUEST, payload, {
      privateKey: key.privateKey,
      chain: [],
    }),
  );
  const body = v1.SignedBody.decode(v1.SignedMessage.decode(res.body).body);
  const grant = v1.ProvisioningResponse.decode(body.payload).grant;
  if (!grant) throw new Error('provisioning failed');
  return {
    privateKey: key.privateKey,
    chain: [grant.deviceCertificate ?? new Uint8Array(0), ...(grant.certificateChain ?? [])],
  };
}

const LICENSE_PAYLOAD = encodeMessage(
  v1.LicenseRequest,
  v1.LicenseRequest.create({ type: v1.LicenseRequest.RequestType.NEW, keyIds: [KID] }),
);

function licenseOk(body: Buffer): boolean {
  const inner = v1.SignedBody.decode(v1.SignedMessage.decode(body).body);
  return (v1.LicenseResponse.decode(inner.payload).license?.keys?.length ?? 0) === 1;
}

interface Phase {
  readonly requests: number;
  readonly errors: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly generator: GeneratorHealth;
}

/** The load generator's own health over a measuring window. */
interface GeneratorHealth {
  readonly eventLoopDelayP99Ms: number;
  readonly eventLoopDelayMaxMs: number;
  readonly gcPauses: number;
  readonly gcMaxMs: number;
  /** CPU time of this process over the window, % of one core. */
  readonly cpuPercent: number;
}

/** Watches this process from `start()` until `stop()`. */
function generatorMonitor(): { start(): void; stop(): GeneratorHealth } {
  const delay = monitorEventLoopDelay({ resolution: 5 });
  const pauses: number[] = [];
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) pauses.push(e.duration);
  });
  let cpu = process.cpuUsage();
  let t0 = performance.now();
  return {
    start() {
      delay.enable();
      gc.observe({ entryTypes: ['gc'] });
      cpu = process.cpuUsage();
      t0 = performance.now();
    },
    stop() {
      delay.disable();
      gc.disconnect();
      const used = process.cpuUsage(cpu);
      const ms = (ns: number): number => +(ns / 1e6).toFixed(2);
      return {
        eventLoopDelayP99Ms: ms(delay.percentile(99)),
        eventLoopDelayMaxMs: ms(delay.max),
        gcPauses: pauses.length,
        gcMaxMs: +Math.max(0, ...pauses).toFixed(2),
        cpuPercent: +((used.user + used.system) / 10 / (performance.now() - t0)).toFixed(1),
      };
    },
  };
}

/** Starts `monitor` once the measuring window opens. */
function startAt(windowStart: number, monitor: { start(): void }): void {
  setTimeout(() => monitor.start(), Math.max(0, windowStart - performance.now()));
}

const pct = (sorted: number[], p: number): number =>
  +(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0).toFixed(2);

/** Runs `concurrency` loops of `one` for warm-up + window; counts only the window. */
async function phase(concurrency: number, one: (i: number) => Promise<boolean>): Promise<Phase> {
  const start = performance.now();
  const windowStart = start + WARMUP_MS;
  const end = windowStart + MEASURE_MS;
  const lat: number[] = [];
  let errors = 0;
  const monitor = generatorMonitor();
  startAt(windowStart, monitor);
  const loop = async (i: number): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const ok = await one(i).catch(() => false);
      if (t0 < windowStart) continue;
      lat.push(performance.now() - t0);
      if (!ok) errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i)));
  return summarize(lat, errors, monitor.stop());
}

/** Throughput and latency percentiles of one measured window. */
function summarize(lat: number[], errors: number, generator: GeneratorHealth): Phase {
  lat.sort((a, b) => a - b);
  return {
    requests: lat.length,
    errors,
    perSecond: Math.round(lat.length / (MEASURE_MS / 1000)),
    p50Ms: pct(lat, 0.5),
    p95Ms: pct(lat, 0.95),
    p99Ms: pct(lat, 0.99),
    maxMs: pct(lat, 1),
    generator,
  };
}

/**
 * Open-loop load: each of `concurrency` devices sends one request every
 * `concurrency / rate` seconds, so the offered load is `rate` per second whatever the
 * latency. Latency counts from the scheduled send time, so a stalled server is not hidden
 * (no coordinated omission).
 */
async function pacedPhase(
  concurrency: number,
  rate: number,
  one: (i: number) => Promise<boolean>,
): Promise<Phase & { offeredPerSecond: number }> {
  const interval = (concurrency / rate) * 1000;
  const start = performance.now();
  const windowStart = start + WARMUP_MS;
  const end = windowStart + MEASURE_MS;
  const lat: number[] = [];
  let errors = 0;
  const monitor = generatorMonitor();
  startAt(windowStart, monitor);
  const loop = async (i: number): Promise<void> => {
    let due = start + (i * interval) / concurrency;
    while (due < end) {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const ok = await one(i).catch(() => false);
      if (due >= windowStart) {
        lat.push(performance.now() - due);
        if (!ok) errors++;
      }
      due += interval;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i)));
  return { offeredPerSecond: rate, ...summarize(lat, errors, monitor.stop()) };
}

/** The head-end suite: JSON figures for licenses and provisioning. */
export async function runHeadend(): Promise<object> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-bench-headend-'));
  const seed = await Headend.open({ dataDir: dir, settings: { provisioningLimit: 1_000_000 } });
  await seed.admin.addContentKey({ kid: KID, key: Buffer.alloc(16, 7) });
  await seed.close();
  const workers = os.availableParallelism();
  // Worker replacements (a crash, or a worker the watchdog found stuck) are part of the result.
  const incidents: string[] = [];
  const cluster = await runHeadendCluster({
    dataDir: dir,
    workers,
    settings: { provisioningLimit: 1_000_000 },
    server: { port: 0 },
    watchdogMs: 15_000,
    log: (line) => {
      incidents.push(line);
      console.error(`bench: ${line}`);
    },
  });
  try {
    const provUrl = new URL(`${cluster.url}/v1/provision`);
    const licUrl = new URL(`${cluster.url}/v1/license`);
    const devices = await Promise.all(
      Array.from({ length: DEVICES }, () => provisionDevice(provUrl)),
    );
    const license = async (i: number): Promise<boolean> => {
      const r = await postRaw(
        licUrl,
        signMessage(MessageType.LICENSE_REQUEST, LICENSE_PAYLOAD, devices[i]!),
        deviceAgents[i],
      );
      return r.status === 200 && licenseOk(r.body);
    };
    const licenses = await phase(DEVICES, license);
    const licensesAt1000 = await pacedPhase(DEVICES, 1000, license);
    const provisioning = await phase(50, async () => {
      const r = await postRaw(provUrl, provisioningRequest());
      return (
        r.status === 200 &&
        v1.ProvisioningResponse.decode(
          v1.SignedBody.decode(v1.SignedMessage.decode(r.body).body).payload,
        ).grant != null
      );
    });
    return {
      workers,
      devices: DEVICES,
      warmupMs: WARMUP_MS,
      measureMs: MEASURE_MS,
      licenses: { mode: 'closed loop (saturation)', ...licenses },
      licensesAt1000: {
        mode: 'open loop, 1000/s offered',
        ...licensesAt1000,
        target: { perSecond: 1000, p99Ms: 50 },
      },
      provisioning: { ...provisioning, concurrency: 50, target: { perSecond: 200 } },
      incidents,
    };
  } finally {
    await cluster.close();
    agent.destroy();
    for (const a of deviceAgents) a.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
