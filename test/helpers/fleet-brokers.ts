/** MQTT brokers for fleet tests: in-process aedes, and a real Mosquitto on loopback. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
type AedesType = import('aedes/types/instance.js').default;

/** A broker the test can stop and start again on the same port. */
export interface TestBroker {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** aedes only: the broker instance (to drop a client's connection). */
  readonly aedes?: () => AedesType;
  /** Removes temporary files (after the final stop). */
  readonly dispose?: () => Promise<void>;
}

/** A free loopback TCP port. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitPort(port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

/** An in-process aedes broker (MQTT 3.1.1) on a loopback port (0 = any free one). */
export async function startAedes(): Promise<TestBroker> {
  const Aedes = ((await import('aedes')) as unknown as { default: new () => AedesType }).default;
  let broker: AedesType | undefined;
  let server: net.Server | undefined;
  const sockets = new Set<Socket>();
  let port = 0;
  const start = async (): Promise<void> => {
    const b = new Aedes();
    broker = b;
    server = net.createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      b.handle(socket);
    });
    await new Promise<void>((r) => server!.listen(port, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  };
  const stop = async (): Promise<void> => {
    const s = server;
    const b = broker;
    server = undefined;
    broker = undefined;
    for (const sock of sockets) sock.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
    if (b) await new Promise<void>((r) => b.close(() => r()));
  };
  await start();
  return {
    name: 'aedes',
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    stop,
    start,
    aedes: () => broker!,
  };
}

/** A real Mosquitto (`mosquitto -c conf`) on a free loopback port, anonymous, no persistence. */
export async function startMosquitto(): Promise<TestBroker> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kw-mosq-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest none',
      '',
    ].join('\n'),
  );
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const p = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    proc = p;
    await waitPort(port);
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    name: 'mosquitto',
    url: `mqtt://127.0.0.1:${port}`,
    port,
    start,
    async stop() {
      await stop();
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

let mosquittoKnown: boolean | undefined;

/**
 * True when `mosquitto` runs. (`hasTool` needs exit status 0, but `mosquitto -h` exits 3,
 * so this checks the banner instead.) Missing: a visible SKIP, or an error in CI
 * (KEYWARDEN_REQUIRE_TOOLS=1).
 */
export function hasMosquitto(): boolean {
  if (mosquittoKnown !== undefined) return mosquittoKnown;
  const r = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
  mosquittoKnown = r.error === undefined && /mosquitto version/i.test(`${r.stdout}${r.stderr}`);
  if (!mosquittoKnown) {
    if (process.env.KEYWARDEN_REQUIRE_TOOLS === '1')
      throw new Error('mosquitto is required (KEYWARDEN_REQUIRE_TOOLS=1) but is not installed');
    console.warn('SKIP: mosquitto is not installed; the Mosquitto fleet tests are skipped');
  }
  return mosquittoKnown;
}
