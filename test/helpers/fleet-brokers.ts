/**
 * MQTT brokers for fleet tests and the fleet bench: in-process aedes, and real Mosquitto and
 * nats-server (MQTT) processes on loopback.
 */
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

/** A broker process the test or bench can stop and start again (same port, same files). */
export interface BrokerProcess extends TestBroker {
  /** Pid of the running process (undefined while stopped). */
  pid(): number | undefined;
  /** Its stderr (and stdout) so far, for failure messages. */
  log(): string;
}

/** Starts `broker`; if it cannot start, disposes of what it made (its temp dir) and throws. */
async function startedOrDisposed(broker: BrokerProcess): Promise<BrokerProcess> {
  try {
    await broker.start();
  } catch (err) {
    await broker.dispose?.();
    throw err;
  }
  return broker;
}

/**
 * Runs `cmd args` as a broker listening on `port` (127.0.0.1): start() spawns it and
 * resolves once `ready` holds (default: the port accepts connections), rejecting with the
 * log if it exits first; stop() sends SIGTERM and waits for the exit.
 */
function brokerProcess(
  name: string,
  url: string,
  port: number,
  cmd: string,
  args: readonly string[],
  opts: { ready?: (log: () => string) => Promise<void>; dispose?: () => Promise<void> } = {},
): BrokerProcess {
  let proc: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    for (const stream of [p.stdout, p.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (d: string) => {
        // Bounded: a long bench must not keep every line.
        log = (log + d).slice(-64 * 1024);
      });
    }
    const exited = new Promise<never>((_, reject) =>
      p.once('exit', (code, signal) =>
        reject(new Error(`${cmd} exited (${code ?? signal}): ${log}`)),
      ),
    );
    exited.catch(() => undefined);
    await Promise.race([opts.ready ? opts.ready(() => log) : waitPort(port), exited]);
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const done = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await done;
  };
  return {
    name,
    url,
    port,
    start,
    stop,
    pid: () => proc?.pid,
    log: () => log,
    ...(opts.dispose && { dispose: opts.dispose }),
  };
}

/** Options of {@link startMosquitto}. */
export interface MosquittoOptions {
  /** More configuration lines (e.g. the bench's `max_connections -1`). */
  readonly extraConfig?: readonly string[];
  /**
   * Raise the open-file limit of the broker to this (or as far as the hard limit allows)
   * before it starts: a broker for thousands of clients needs one fd per connection.
   */
  readonly fileLimit?: number;
}

/** A real Mosquitto (`mosquitto -c conf`) on a free loopback port, anonymous, no persistence. */
export async function startMosquitto(opts: MosquittoOptions = {}): Promise<BrokerProcess> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kw-mosq-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const [cmd, args] =
    opts.fileLimit === undefined
      ? ['mosquitto', ['-c', conf]]
      : [
          'sh',
          [
            '-c',
            `ulimit -n ${opts.fileLimit} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec mosquitto -c "$1"`,
            'sh',
            conf,
          ],
        ];
  const broker = brokerProcess('mosquitto', `mqtt://127.0.0.1:${port}`, port, cmd, args, {
    dispose: () => rm(dir, { recursive: true, force: true }),
  });
  return startedOrDisposed(broker);
}

/**
 * A real nats-server with its MQTT listener (MQTT 3.1.1 only) on a free loopback port.
 * NATS implements MQTT on JetStream, which needs a server_name and a store directory:
 * sessions, QoS 1 messages and retained messages live there, so they survive stop() and
 * start() like a persistent broker's. The NATS client port is another free loopback port.
 */
export async function startNats(): Promise<BrokerProcess> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kw-nats-'));
  const port = await freePort();
  const natsPort = await freePort();
  const conf = path.join(dir, 'nats.conf');
  await writeFile(
    conf,
    [
      'server_name: kw-test-nats',
      `listen: "127.0.0.1:${natsPort}"`,
      `jetstream { store_dir: ${JSON.stringify(path.join(dir, 'store'))} }`,
      `mqtt { listen: "127.0.0.1:${port}" }`,
      '',
    ].join('\n'),
  );
  const broker = brokerProcess(
    'nats',
    `mqtt://127.0.0.1:${port}`,
    port,
    'nats-server',
    ['-c', conf],
    {
      // The MQTT port opens before JetStream is up; "Server is ready" comes after both.
      ready: async (log) => {
        const end = Date.now() + 15_000;
        while (!/Server is ready/.test(log())) {
          if (Date.now() > end) throw new Error(`nats-server did not get ready: ${log()}`);
          await new Promise((r) => setTimeout(r, 25));
        }
        await waitPort(port);
      },
      dispose: () => rm(dir, { recursive: true, force: true }),
    },
  );
  return startedOrDisposed(broker);
}

let natsKnown: boolean | undefined;

/**
 * True when `nats-server` runs (`--version`). Missing: a visible SKIP, or an error in CI
 * (KEYWARDEN_REQUIRE_TOOLS=1).
 */
export function hasNatsServer(): boolean {
  if (natsKnown !== undefined) return natsKnown;
  const r = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  natsKnown = r.error === undefined && /nats-server: v2\./.test(`${r.stdout}${r.stderr}`);
  if (!natsKnown) {
    if (process.env.KEYWARDEN_REQUIRE_TOOLS === '1')
      throw new Error('nats-server is required (KEYWARDEN_REQUIRE_TOOLS=1) but is not installed');
    console.warn('SKIP: nats-server is not installed; the NATS fleet tests are skipped');
  }
  return natsKnown;
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
): Promise<BrokerProcess> {
  const broker = brokerProcess(
    'mosquitto (config)',
    `mqtts://127.0.0.1:${port}`,
    port,
    'mosquitto',
    ['-c', confPath],
  );
  await broker.start();
  return broker;
}

/** A TCP relay in front of a broker, to cut a client's connection as a network fault would. */
export interface TcpRelay {
  /** mqtt://127.0.0.1:port of the relay. */
  readonly url: string;
  /** Destroys every relayed connection now (both sides), without any MQTT DISCONNECT. */
  cut(): void;
  close(): Promise<void>;
}

/** Starts a {@link TcpRelay} on a free loopback port forwarding to 127.0.0.1:`targetPort`. */
export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  const pairs = new Set<[Socket, Socket]>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    for (const s of pair) {
      s.once('close', end);
      s.on('error', end);
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const cut = (): void => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut,
    async close() {
      cut();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
