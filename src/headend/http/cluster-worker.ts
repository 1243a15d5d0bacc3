/**
 * Entry of a head-end cluster worker: opens the data dir and serves on the shared port.
 * The primary passes the configuration in KEYWARDEN_HEADEND_WORKER.
 *
 * Shutdown (SIGTERM, SIGINT, or the primary going away): the server stops accepting,
 * finishes the requests in flight and closes its connections (HeadendServer.close), then
 * the database is closed, then the process exits 0. A hard deadline (the shutdown grace
 * plus 3 s) exits 1 whatever is still pending. The handlers are installed before anything
 * else, so a signal during start-up is honoured too.
 */
import { readFileSync } from 'node:fs';
import { Headend } from '../index.js';
import { WORKER_CONFIG_ENV, type ClusterMessage, type WorkerConfig } from './cluster.js';
import { startHeadendServer, type HeadendServer } from './server.js';

const DEFAULT_GRACE_MS = 10_000;

const config = JSON.parse(process.env[WORKER_CONFIG_ENV] ?? '{}') as WorkerConfig;
let headend: Headend | undefined;
let listening: HeadendServer | undefined;
let stopping = false;

function say(line: string): void {
  process.stderr.write(`headend worker ${process.pid}: ${line}\n`);
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const grace = config.server?.shutdownGraceMs ?? DEFAULT_GRACE_MS;
  setTimeout(() => {
    say(`shutdown took over ${grace + 3000} ms; exiting`);
    process.exit(1);
  }, grace + 3000).unref();
  try {
    await listening?.close();
    await headend?.close();
  } catch (err) {
    say(`shutdown: ${(err as Error).message}`);
    code ||= 1;
  }
  process.exit(code);
}

process.once('SIGTERM', () => void stop(0));
process.once('SIGINT', () => void stop(0));
process.once('disconnect', () => void stop(0));
process.on('message', (m: ClusterMessage) => {
  if (m?.type === 'ping' && process.connected)
    process.send?.({ type: 'pong', seq: m.seq } satisfies ClusterMessage);
});
// Requests answer their own failures (server.ts); anything reaching these is a bug: log it
// and let the primary replace this worker.
process.on('unhandledRejection', (err: unknown) => {
  say(`unhandled rejection: ${String((err as Error)?.stack ?? err)}`);
  void stop(1);
});
process.on('uncaughtException', (err: Error) => {
  say(`uncaught exception: ${String(err.stack ?? err)}`);
  process.exit(1);
});

async function runWorker(): Promise<void> {
  headend = await Headend.open({
    dataDir: config.dataDir,
    backgroundCheckpoints: true,
    ...(config.settings && { settings: config.settings }),
  });
  const { tlsCertFile, tlsKeyFile, ...server } = config.server;
  const tls =
    tlsCertFile && tlsKeyFile
      ? { cert: readFileSync(tlsCertFile), key: readFileSync(tlsKeyFile) }
      : undefined;
  if (stopping) return;
  listening = await startHeadendServer(headend, {
    ...server,
    ...(tls && { tls }),
    onError: (status, code, message) => {
      if (status >= 500) say(`${status} ${code}: ${message}`);
    },
  });
  if (stopping) return void (await listening.close());
  process.send?.({
    type: 'listening',
    url: listening.url,
    port: listening.port,
  } satisfies ClusterMessage);
}

runWorker().catch((err: unknown) => {
  say(`failed: ${(err as Error).message}`);
  process.exit(1);
});
