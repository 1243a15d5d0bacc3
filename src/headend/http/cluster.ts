import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { kwError } from '../../errors/index.js';
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
}

/** A running cluster. */
export interface HeadendCluster {
  readonly url: string;
  readonly port: number;
  readonly workers: number;
  close(): Promise<void>;
}

/** Environment variable that carries a worker's {@link WorkerConfig}. */
export const WORKER_CONFIG_ENV = 'KEYWARDEN_HEADEND_WORKER';

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

interface Listening {
  readonly type: 'listening';
  readonly url: string;
  readonly port: number;
}

function waitListening(worker: Worker): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number): void =>
      reject(kwError('HEADEND_INTERNAL', `worker exited (${code}) before listening`));
    worker.once('exit', onExit);
    worker.on('message', (m: Listening) => {
      if (m?.type !== 'listening') return;
      worker.off('exit', onExit);
      resolve(m);
    });
  });
}

/**
 * Runs the head-end on `node:cluster` workers sharing one port, so that license signing
 * and key wrapping use every core. The primary opens the data dir once first (first-run PKI
 * creation and migrations happen exactly once), then forks; workers share the SQLite file
 * (WAL, busy timeout) and the replay window lives in it. A worker that dies is replaced.
 */
export async function runHeadendCluster(opts: ClusterOptions): Promise<HeadendCluster> {
  (
    await Headend.open({ dataDir: opts.dataDir, ...(opts.settings && { settings: opts.settings }) })
  ).close();
  const count = Math.max(1, opts.workers ?? os.availableParallelism());
  const entry = workerEntry();
  cluster.setupPrimary({ exec: entry, execArgv: workerExecArgv(entry), silent: false });
  let closing = false;
  const env = (): Record<string, string> => ({
    [WORKER_CONFIG_ENV]: JSON.stringify(opts),
  });
  const first = cluster.fork(env());
  const ready = await waitListening(first);
  // With port 0 every worker still gets the same port: the primary keys shared handles by
  // the requested address, so all workers pass the original options unchanged.
  const rest = Array.from({ length: count - 1 }, () => cluster.fork(env()));
  await Promise.all(rest.map(waitListening));
  const workers = new Set<Worker>([first, ...rest]);
  const onExit = (w: Worker): void => {
    workers.delete(w);
    if (!closing) workers.add(cluster.fork(env()));
  };
  cluster.on('exit', onExit);
  return {
    url: ready.url,
    port: ready.port,
    workers: count,
    close: async () => {
      closing = true;
      cluster.off('exit', onExit);
      await Promise.all(
        [...workers].map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.isDead()) return resolve();
              w.once('exit', () => resolve());
              w.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}
