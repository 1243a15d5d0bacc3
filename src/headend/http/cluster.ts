import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { kwError } from '../../errors/index.js';
import type { FleetOptions, RunningFleet } from '../fleet/fleet-service.js';
import { withoutFlags } from '../flags.js';
import type { HeadendOptions } from '../headend.js';
import { Headend } from '../index.js';
import type { ServerOptions } from './server.js';

/** Configuration handed to each worker (JSON in the environment). */
export interface WorkerConfig {
  readonly dataDir: string;
  readonly settings?: HeadendOptions['settings'];
  readonly server: Omit<ServerOptions, 'onError' | 'tls'> & {
    tlsCertFile?: string;
    tlsKeyFile?: string;
  };
}

/** Options of {@link runHeadendCluster}. */
export interface ClusterOptions extends WorkerConfig {
  /** Worker processes; default: the CPU count. */
  readonly workers?: number;
  /**
   * How long {@link HeadendCluster.close} waits for a worker after SIGTERM before it sends
   * SIGKILL; default: the server's shutdown grace plus 5 s.
   */
  readonly stopTimeoutMs?: number;
  /**
   * A worker that has not answered the primary's heartbeat for this long is stuck (its
   * event loop is blocked): it is killed and replaced. Default 30 s; 0 turns it off.
   */
  readonly watchdogMs?: number;
  /** Where the primary reports replaced and killed workers; default stderr. */
  readonly log?: (line: string) => void;
  /**
   * Run the fleet side (embedded MQTT broker unless `mqttUrl`, and the publisher) in the
   * primary; false or absent: none (`keywarden headend` passes its --mqtt-* options).
   */
  readonly fleet?: FleetOptions | false;
}

/** A running cluster. */
export interface HeadendCluster {
  readonly url: string;
  readonly port: number;
  readonly workers: number;
  /** The MQTT broker URL of the fleet side, when it runs. */
  readonly mqttUrl: string | undefined;
  /** Process ids of the workers running now. */
  pids(): number[];
  /**
   * Stops every worker: SIGTERM (each one finishes its requests in flight, closes its
   * connections and the database, and exits), then SIGKILL for any still running after
   * the stop timeout. Resolves once all have exited. Idempotent.
   *
   * Exit the process soon after, as `keywarden headend` does. Node's round-robin primary
   * (Node 20) accepts connections itself and hands them to workers; a connection that
   * arrives in the last instant, handed to a worker that has just closed its server and
   * declined after the last worker left, stays queued in the primary with nobody to serve
   * it. The client sees a connection that neither answers nor closes until the primary
   * process exits and the kernel resets it.
   */
  close(): Promise<void>;
}

/** Environment variable that carries a worker's {@link WorkerConfig}. */
export const WORKER_CONFIG_ENV = 'KEYWARDEN_HEADEND_WORKER';

/** Messages between the primary and a worker. */
export type ClusterMessage =
  | { readonly type: 'listening'; readonly url: string; readonly port: number }
  | { readonly type: 'ping'; readonly seq: number }
  | { readonly type: 'pong'; readonly seq: number };

/** Default shutdown grace of a worker's server (ServerOptions.shutdownGraceMs). */
const DEFAULT_GRACE_MS = 10_000;
const DEFAULT_WATCHDOG_MS = 30_000;
/** Pause before replacing a crashed worker, so that a crash loop cannot spin. */
const RESPAWN_DELAY_MS = 200;

/** The worker entry beside this file, in the same flavour (.ts under tsx, .js when built). */
function workerEntry(): string {
  return fileURLToPath(import.meta.url).replace(/cluster\.(ts|js)$/, 'cluster-worker.$1');
}

/** Node flags for workers: the parent's, plus the tsx loader when running from sources. */
function workerExecArgv(entry: string): string[] {
  const argv = [...process.execArgv];
  if (entry.endsWith('.ts') && !argv.some((a) => a.includes('tsx'))) argv.push('--import', 'tsx');
  return argv;
}

function isMessage(m: unknown): m is ClusterMessage {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

function waitListening(worker: Worker): Promise<{ url: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number): void =>
      reject(kwError('HEADEND_INTERNAL', `worker exited (${code}) before listening`));
    worker.once('exit', onExit);
    const onMessage = (m: unknown): void => {
      if (!isMessage(m) || m.type !== 'listening') return;
      worker.off('exit', onExit).off('message', onMessage);
      resolve(m);
    };
    worker.on('message', onMessage);
  });
}

/** Sends SIGTERM, then SIGKILL after `timeoutMs`; resolves when the worker has exited. */
function stopWorker(worker: Worker, timeoutMs: number, log: (line: string) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    if (worker.isDead()) return resolve();
    const kill = setTimeout(() => {
      log(`headend: worker ${worker.process.pid} did not stop in ${timeoutMs} ms; killing it`);
      worker.process.kill('SIGKILL');
    }, timeoutMs);
    worker.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    worker.process.kill('SIGTERM');
  });
}

/**
 * Runs the head-end on `node:cluster` workers sharing one port, so that license signing
 * and key wrapping use every core. The primary opens the data dir once first (first-run PKI
 * creation, migrations and the server flags given in `settings` happen exactly once), then
 * forks; workers share the SQLite file (WAL, busy timeout), and the replay window and the
 * server flags live in it. A worker that crashes is replaced, and so is one whose event
 * loop stops answering the heartbeat (it is killed first).
 */
export async function runHeadendCluster(opts: ClusterOptions): Promise<HeadendCluster> {
  const log = opts.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const seed = await Headend.open({
    dataDir: opts.dataDir,
    ...(opts.settings && { settings: opts.settings }),
  });
  // The broker and the publisher run in the primary alone (workers serve HTTP); the
  // publisher keeps its own connection to the data dir.
  const fleetOpts = opts.fleet ?? false;
  let fleet: RunningFleet | undefined;
  if (fleetOpts) {
    try {
      fleet = await seed.startFleet({ log, ...fleetOpts });
    } catch (err) {
      await seed.close();
      throw err;
    }
  } else await seed.close();
  const stopFleet = async (): Promise<void> => {
    if (!fleet) return;
    await fleet.close().catch((err: unknown) => log(`headend: fleet: ${(err as Error).message}`));
    await seed.close();
  };
  const count = Math.max(1, opts.workers ?? os.availableParallelism());
  const entry = workerEntry();
  cluster.setupPrimary({ exec: entry, execArgv: workerExecArgv(entry), silent: false });
  // The server flags are in the database now; a worker started later (a replacement) must
  // not write the start-up values over what an operator set since.
  const config: WorkerConfig = {
    dataDir: opts.dataDir,
    ...(opts.settings && { settings: withoutFlags(opts.settings) }),
    server: opts.server,
  };
  const env = { [WORKER_CONFIG_ENV]: JSON.stringify(config) };
  const stopTimeoutMs =
    opts.stopTimeoutMs ?? (opts.server.shutdownGraceMs ?? DEFAULT_GRACE_MS) + 5_000;
  const watchdogMs = opts.watchdogMs ?? DEFAULT_WATCHDOG_MS;
  const workers = new Set<Worker>();
  const lastSeen = new Map<Worker, number>();
  let closing = false;

  const fork = (): Worker => {
    const w = cluster.fork(env);
    workers.add(w);
    lastSeen.set(w, Date.now());
    w.on('message', (m: unknown) => {
      if (isMessage(m) && (m.type === 'pong' || m.type === 'listening'))
        lastSeen.set(w, Date.now());
    });
    // A failed send (the worker is going away) is reported by 'exit'; nothing to do here.
    w.on('error', () => undefined);
    return w;
  };
  const onExit = (w: Worker, code: number, signal: string | null): void => {
    if (!workers.delete(w)) return;
    lastSeen.delete(w);
    // A worker that stopped cleanly was told to (SIGTERM to the process group on shutdown).
    if (closing || (code === 0 && signal === null)) return;
    log(`headend: worker ${w.process.pid} exited (${signal ?? code}); starting another`);
    setTimeout(() => {
      if (!closing) fork();
    }, RESPAWN_DELAY_MS).unref();
  };
  cluster.on('exit', onExit);

  let heartbeat: NodeJS.Timeout | undefined;
  try {
    const first = fork();
    const ready = await waitListening(first);
    // With port 0 every worker still gets the same port: the primary keys shared handles by
    // the requested address, so all workers pass the original options unchanged.
    await Promise.all(Array.from({ length: count - 1 }, () => waitListening(fork())));
    if (watchdogMs > 0) {
      let seq = 0;
      heartbeat = setInterval(
        () => {
          const now = Date.now();
          seq++;
          for (const w of workers) {
            if (now - (lastSeen.get(w) ?? now) > watchdogMs) {
              log(`headend: worker ${w.process.pid} is not answering; killing it`);
              lastSeen.set(w, now);
              w.process.kill('SIGKILL');
            } else if (w.isConnected()) w.send({ type: 'ping', seq } satisfies ClusterMessage);
          }
        },
        Math.max(50, Math.floor(watchdogMs / 3)),
      );
      heartbeat.unref();
    }
    let closed: Promise<void> | undefined;
    return {
      url: ready.url,
      port: ready.port,
      workers: count,
      mqttUrl: fleet?.mqttUrl,
      pids: () => [...workers].flatMap((w) => w.process.pid ?? []),
      close: () =>
        (closed ??= (async () => {
          closing = true;
          clearInterval(heartbeat);
          await Promise.all([...workers].map((w) => stopWorker(w, stopTimeoutMs, log)));
          cluster.off('exit', onExit);
          await stopFleet();
        })()),
    };
  } catch (err) {
    closing = true;
    clearInterval(heartbeat);
    await Promise.all([...workers].map((w) => stopWorker(w, stopTimeoutMs, log)));
    cluster.off('exit', onExit);
    await stopFleet();
    throw err;
  }
}
