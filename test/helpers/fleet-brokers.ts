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

/** Test paths substituted into a shipped mosquitto.conf by {@link deriveMosquittoConfig}. */
export interface MosquittoConfigPaths {
  readonly cafile: string;
  readonly certfile: string;
  readonly keyfile: string;
  readonly acl_file: string;
}

/**
 * Rewrites a shipped Mosquitto configuration for a test, keeping every other line as is:
 * the `listener` becomes `port` on 127.0.0.1, the four file directives point at `paths`,
 * persistence is off, the log goes to stderr, and the broker keeps the test's user. Throws when a directive to replace is
 * missing, so a test cannot silently run against a config that drifted from the shipped one.
 */
export function deriveMosquittoConfig(
  text: string,
  port: number,
  paths: MosquittoConfigPaths,
): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([a-z_]+)(\s|$)/.exec(line);
    const key = m?.[1];
    if (key === 'listener') {
      if (seen.has('listener')) throw new Error('the config has more than one listener');
      out.push(`listener ${port} 127.0.0.1`);
    } else if (key !== undefined && key in paths) {
      out.push(`${key} ${paths[key as keyof MosquittoConfigPaths]}`);
    } else if (key === 'persistence') {
      out.push('persistence false');
    } else if (key === 'persistence_location' || key === 'log_dest') {
      continue;
    } else {
      out.push(line);
    }
    if (key !== undefined) seen.add(key);
  }
  for (const key of ['listener', ...Object.keys(paths)]) {
    if (!seen.has(key)) throw new Error(`the config has no "${key}" line`);
  }
  // Run as whoever runs the test (as root, Mosquitto would switch to the user "mosquitto",
  // which cannot read the 0700 temp dir); ignored when not started as root.
  out.push(`user ${os.userInfo().username}`);
  out.push('log_dest stderr', 'log_type error', 'log_type warning', '');
  return out.join('\n');
}

/**
 * Mosquitto with a given config file (already listening on `port`, 127.0.0.1). Its stderr
 * is kept (`log()`) for failure messages.
 */
export async function startMosquittoWithConfig(
  confPath: string,
  port: number,
): Promise<TestBroker & { log(): string }> {
  let proc: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    const p = spawn('mosquitto', ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    p.stderr?.setEncoding('utf8');
    p.stderr?.on('data', (d: string) => {
      log += d;
    });
    const exited = new Promise<never>((_, reject) =>
      p.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${log}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitPort(port), exited]);
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const done = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await done;
  };
  await start();
  return {
    name: 'mosquitto (config)',
    url: `mqtts://127.0.0.1:${port}`,
    port,
    start,
    stop,
    log: () => log,
  };
}
