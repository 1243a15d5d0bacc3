/**
 * The head-end as it is deployed: cluster workers over one data dir. Server flags shared by
 * the workers and kept across restarts; graceful shutdown on SIGTERM under load (requests in
 * flight are answered, then every process exits); crashed and stuck workers replaced;
 * acknowledged licenses and nonces kept when workers are killed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors/index.js';
import { Headend, runHeadendCluster, startHeadendServer } from '../../src/headend/index.js';
import { decodeMessage } from '../../src/protocol/codec.js';
import { MessageType, verifyMessage } from '../../src/protocol/envelope.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import {
  freePort,
  licenseResponse,
  removeDir,
  startTestHeadend,
  TestDevice,
} from './headend-helpers.js';

const v1 = keywarden.v1;
const KID = Buffer.alloc(16, 0x3c);
const REPO = path.resolve(import.meta.dirname, '../..');
const CLI_ENTRY = path.join(REPO, 'test/helpers/cli-entry.ts');
const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A data dir with a content key; returns it and the operator root. */
async function dataDir(): Promise<{ dir: string; root: Buffer }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-cluster-'));
  dirs.push(dir);
  const seed = await startTestHeadend({}, dir);
  await seed.headend.admin.addContentKey({ kid: KID, key: Buffer.alloc(16, 0x44) });
  const root = seed.root;
  await seed.stop();
  return { dir, root };
}

/** One request on a connection of its own (so that the cluster spreads them over workers). */
function once(
  url: string,
  body?: Uint8Array,
  timeoutMs = 10_000,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: body ? 'POST' : 'GET',
        agent: false,
        headers: body ? { 'content-type': 'application/x-protobuf' } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Worker pids seen over fresh connections (round robin reaches each in turn). */
async function servingPids(url: string, tries = 8): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < tries; i++) {
    const health = JSON.parse((await once(`${url}/v1/health`)).body.toString()) as { pid: number };
    pids.add(health.pid);
  }
  return pids;
}

function provisioning(body: Buffer, root: Buffer): keywarden.v1.ProvisioningResponse {
  const v = verifyMessage(body, MessageType.PROVISIONING_RESPONSE, { trustedRoot: root });
  return decodeMessage(v1.ProvisioningResponse, v.payload, 'ProvisioningResponse');
}

/**
 * A license request whose headers and first half of the body are on the wire: in flight
 * at the server. `finish()` sends the rest and reads the whole answer.
 */
function halfSent(port: number, envelope: Uint8Array) {
  const sock = net.connect(port, '127.0.0.1');
  const head =
    `POST /v1/license HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n` +
    `Content-Length: ${envelope.length}\r\n\r\n`;
  const cut = envelope.length >> 1;
  let answer = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => (answer = Buffer.concat([answer, d])));
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  sock.on('error', () => undefined);
  sock.write(Buffer.concat([Buffer.from(head), envelope.subarray(0, cut)]));
  return {
    async finish(): Promise<{ head: string; body: Buffer }> {
      sock.write(envelope.subarray(cut));
      await Promise.race([closed, sleep(10_000)]);
      sock.destroy();
      const split = answer.indexOf('\r\n\r\n');
      return {
        head: answer.subarray(0, split).toString('latin1'),
        body: answer.subarray(split + 4),
      };
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(50);
  }
}

/** `keywarden headend --data DIR --port 0 ARGS` in a process of its own, once it serves. */
async function startCliHeadend(dir: string, args: string[]) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI_ENTRY, 'headend', '--data', dir, '--port', '0', ...args],
    { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    await until(
      () => /keywarden headend: (http:\S+)/.test(stderr) || child.exitCode !== null,
      30_000,
    );
  } catch (err) {
    kill();
    throw err;
  }
  const url = /keywarden headend: (http:\S+)/.exec(stderr)?.[1];
  if (!url) throw new Error(`keywarden headend did not start: ${stderr}`);
  return { child, url, port: Number(new URL(url).port), exited, kill };
}

describe('head-end server shutdown', () => {
  it('closes idle connections at once and answers the request in flight before closing', async () => {
    const { dir, root } = await dataDir();
    const headend = await Headend.open({ dataDir: dir, env: { KEYWARDEN_MASTER_KEY: '' } });
    const server = await startHeadendServer(headend, { port: 0 });
    try {
      const d = new TestDevice(server.url, root);
      await d.provision();
      // A keep-alive connection after its answer, and one that never sent a byte.
      const keptAlive = net.connect(server.port, '127.0.0.1');
      keptAlive.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((r) => keptAlive.once('data', r));
      const silent = net.connect(server.port, '127.0.0.1');
      await new Promise((r) => silent.once('connect', r));
      const idleClosed = Promise.all(
        [keptAlive, silent].map(
          (c) => new Promise<void>((resolve) => c.on('close', () => resolve())),
        ),
      );
      const received = new Promise<void>((resolve) =>
        server.server.on('request', (req: http.IncomingMessage) => {
          if (req.url === '/v1/license') resolve();
        }),
      );
      const inFlight = halfSent(server.port, d.licenseRequest({ keyIds: [KID] }));
      await received;
      expect(server.inFlight).toBe(1);
      let closed = false;
      const started = Date.now();
      const closing = server.close().then(() => (closed = true));
      await idleClosed;
      expect(Date.now() - started).toBeLessThan(1000);
      await expect(once(`${server.url}/v1/health`, undefined, 2000)).rejects.toThrow();
      expect(closed).toBe(false);
      const answer = await inFlight.finish();
      expect(answer.head).toMatch(/^HTTP\/1\.1 200 /);
      expect(answer.head).toMatch(/\r\nConnection: close/i);
      expect(licenseResponse(answer.body, root).license?.keys).toHaveLength(1);
      await closing;
      expect(server.inFlight).toBe(0);
    } finally {
      await server.close();
      await headend.close();
    }
  });
});

describe('head-end cluster', () => {
  it('shares server flags among its workers, applies changes at once, and keeps them', async () => {
    const { dir, root } = await dataDir();
    const cluster = await runHeadendCluster({
      dataDir: dir,
      workers: 2,
      settings: { provisioningLimit: 1, minAgentVersion: '1.0.0' },
      server: { port: 0 },
    });
    try {
      expect((await servingPids(cluster.url)).size).toBe(2);
      // The limit counts across workers: the same hardware twice, on fresh connections.
      const d = new TestDevice(cluster.url, root, '1.0.0');
      const provision = async (dev: TestDevice) =>
        provisioning(
          (await once(`${cluster.url}/v1/provision`, dev.provisioningRequest())).body,
          root,
        );
      expect((await provision(d)).grant?.deviceId).toBeTruthy();
      expect((await provision(d)).error?.code).toBe(ERRORS.HEADEND_RATE_LIMITED.number);
      // The operator changes the flags while the cluster runs (another process, same data).
      const admin = await Headend.open({ dataDir: dir, env: { KEYWARDEN_MASTER_KEY: '' } });
      await admin.admin.setFlag('provision-limit', '5');
      await admin.admin.setFlag('min-agent-version', '1.5.0');
      await admin.close();
      for (let i = 0; i < 4; i++)
        expect((await provision(new TestDevice(cluster.url, root, '1.2.0'))).error).toMatchObject({
          code: ERRORS.AGENT_VERSION_TOO_OLD.number,
          minAgentVersion: '1.5.0',
        });
      const updated = new TestDevice(cluster.url, root, '1.5.0');
      expect((await provision(updated)).grant?.deviceId).toBeTruthy();
    } finally {
      await cluster.close();
    }
    // A restart without the options keeps them.
    const again = await startTestHeadend({}, dir);
    try {
      expect(await again.headend.ctx.currentSettings()).toMatchObject({
        provisioningLimit: 5,
        minAgentVersion: '1.5.0',
      });
      expect(await again.headend.admin.listFlags()).toEqual([
        expect.objectContaining({ name: 'min-agent-version', value: '1.5.0', source: 'database' }),
        expect.objectContaining({ name: 'provision-limit', value: '5', source: 'database' }),
      ]);
    } finally {
      await again.stop();
    }
  });

  // The cluster runs as an operator runs it: `keywarden headend --workers 2` in a process of
  // its own, stopped with SIGTERM. (In-process, Node's round-robin primary can keep a
  // connection that a closing worker declined until the primary exits; see cluster.ts.)
  it('on SIGTERM under load, answers the requests in flight and exits promptly', async () => {
    const { dir, root } = await dataDir();
    const headend = await startCliHeadend(dir, ['--workers', '2', '--no-fleet']);
    try {
      const pids = await servingPids(headend.url);
      expect(pids.size).toBe(2);
      const devices: TestDevice[] = [];
      for (let i = 0; i < 8; i++) {
        const d = new TestDevice(headend.url, root);
        await d.provision();
        devices.push(d);
      }
      // Load: keep-alive clients sending licenses requests back to back.
      let loading = true;
      const outcomes: string[] = [];
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      const loop = async (d: TestDevice): Promise<void> => {
        while (loading) {
          const status = await new Promise<string>((resolve) => {
            const body = d.licenseRequest({ keyIds: [KID] });
            const req = http.request(
              `${headend.url}/v1/license`,
              { method: 'POST', agent, headers: { 'content-type': 'application/x-protobuf' } },
              (res) => {
                res.resume();
                res.on('end', () => resolve(String(res.statusCode)));
                res.on('error', () => resolve('connection error'));
              },
            );
            req.setTimeout(8000, () => req.destroy(new Error('hang')));
            req.on('error', (err) => resolve(err.message === 'hang' ? 'hang' : 'connection error'));
            req.end(body);
          });
          outcomes.push(status);
          if (status !== '200') await sleep(20);
        }
      };
      const load = devices.map((d) => loop(d));
      await sleep(500);
      // Six requests in flight (headers and half the body received), spread over the workers.
      const inFlight = devices
        .slice(0, 6)
        .map((d) => halfSent(headend.port, d.licenseRequest({ keyIds: [KID] })));
      await sleep(1000);
      const started = Date.now();
      headend.child.kill('SIGTERM');
      await sleep(300);
      const answers = await Promise.all(inFlight.map((r) => r.finish()));
      expect(await headend.exited).toBe(0);
      const elapsed = Date.now() - started;
      loading = false;
      await Promise.all(load);
      agent.destroy();

      for (const a of answers) {
        expect(a.head).toMatch(/^HTTP\/1\.1 200 /);
        expect(a.head).toMatch(/\r\nConnection: close/i);
        expect(licenseResponse(a.body, root).license?.keys).toHaveLength(1);
      }
      expect(elapsed).toBeLessThan(5000);
      for (const pid of pids) expect(isAlive(pid)).toBe(false);
      expect(outcomes.filter((o) => o === '200').length).toBeGreaterThan(10);
      // Nothing hung and nothing failed inside: requests either got their license or, sent
      // once the workers stopped listening, could not connect.
      expect(outcomes.filter((o) => o !== '200' && o !== 'connection error')).toEqual([]);
    } finally {
      headend.kill();
    }
  });

  it('loses no acknowledged license or nonce when its workers are killed mid-run', async () => {
    const { dir, root } = await dataDir();
    const cluster = await runHeadendCluster({
      dataDir: dir,
      workers: 2,
      server: { port: 0 },
      log: () => undefined,
    });
    const device = new TestDevice(cluster.url, root);
    const sent: Uint8Array[] = [];
    try {
      const grant = provisioning(
        (await once(`${cluster.url}/v1/provision`, device.provisioningRequest())).body,
        root,
      ).grant;
      device.chain = [
        grant?.deviceCertificate ?? new Uint8Array(0),
        ...(grant?.certificateChain ?? []),
      ];
      // Acknowledged licenses, over both workers (a fresh connection each), while their
      // threads checkpoint in the background.
      for (let i = 0; i < 60; i++) {
        const request = device.licenseRequest({ keyIds: [KID] });
        const res = await once(`${cluster.url}/v1/license`, request);
        expect(res.status).toBe(200);
        expect(licenseResponse(res.body, root).license?.keys).toHaveLength(1);
        sent.push(request);
      }
      // A replay is refused by whichever worker gets it.
      for (const request of sent.slice(0, 4))
        expect((await once(`${cluster.url}/v1/license`, request)).status).toBe(409);
      // No clean shutdown: no final checkpoint, the WAL as the workers left it.
      for (const pid of cluster.pids()) process.kill(pid, 'SIGKILL');
    } finally {
      await cluster.close();
    }
    const again = await startTestHeadend({}, dir);
    try {
      expect(await again.headend.ctx.store.countLicenses()).toBe(60);
      for (const request of [sent[0]!, sent[59]!])
        expect((await once(`${again.url}/v1/license`, request)).status).toBe(409);
    } finally {
      await again.stop();
    }
  });

  it('replaces a crashed worker, and kills and replaces a stuck one', async () => {
    const { dir } = await dataDir();
    const lines: string[] = [];
    const cluster = await runHeadendCluster({
      dataDir: dir,
      workers: 2,
      server: { port: 0 },
      watchdogMs: 1500,
      log: (line) => lines.push(line),
    });
    try {
      const [crashed, stuck] = cluster.pids() as [number, number];
      process.kill(crashed, 'SIGKILL');
      await until(() => cluster.pids().length === 2 && !cluster.pids().includes(crashed), 10_000);
      // A stopped process answers no heartbeat: like a worker whose event loop is blocked.
      process.kill(stuck, 'SIGSTOP');
      await until(() => cluster.pids().length === 2 && !cluster.pids().includes(stuck), 15_000);
      expect(isAlive(stuck)).toBe(false);
      expect(lines.join('\n')).toContain(`worker ${stuck} is not answering; killing it`);
      expect((await once(`${cluster.url}/v1/health`)).status).toBe(200);
    } finally {
      await cluster.close();
    }
  });

  it('keywarden headend exits 0 on SIGTERM and takes its workers with it', async () => {
    const { dir } = await dataDir();
    const mqttPort = await freePort();
    const headend = await startCliHeadend(dir, ['--workers', '2', '--mqtt-port', String(mqttPort)]);
    try {
      const pids = await servingPids(headend.url);
      expect(pids.size).toBe(2);
      const started = Date.now();
      headend.child.kill('SIGTERM');
      expect(await headend.exited).toBe(0);
      expect(Date.now() - started).toBeLessThan(5000);
      await until(() => [...pids].every((p) => !isAlive(p)), 2000);
    } finally {
      headend.kill();
    }
  });
});
