/**
 * Entry of a head-end cluster worker: opens the data dir and serves on the shared port.
 * The primary passes the configuration in KEYWARDEN_HEADEND_WORKER.
 */
import { readFileSync } from 'node:fs';
import { Headend } from '../index.js';
import { WORKER_CONFIG_ENV, type WorkerConfig } from './cluster.js';
import { startHeadendServer } from './server.js';

async function runWorker(): Promise<void> {
  const config = JSON.parse(process.env[WORKER_CONFIG_ENV] ?? '{}') as WorkerConfig;
  const headend = await Headend.open({
    dataDir: config.dataDir,
    ...(config.settings && { settings: config.settings }),
  });
  const { tlsCertFile, tlsKeyFile, ...server } = config.server;
  const tls =
    tlsCertFile && tlsKeyFile
      ? { cert: readFileSync(tlsCertFile), key: readFileSync(tlsKeyFile) }
      : undefined;
  const listening = await startHeadendServer(headend, {
    ...server,
    ...(tls && { tls }),
    onError: (status, code, message) => {
      if (status >= 500)
        process.stderr.write(`headend worker ${process.pid}: ${status} ${code}: ${message}\n`);
    },
  });
  process.send?.({ type: 'listening', url: listening.url, port: listening.port });
  const stop = (): void => {
    void listening.close().then(() => {
      headend.close();
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.once('disconnect', stop);
}

runWorker().catch((err: unknown) => {
  process.stderr.write(`headend worker ${process.pid} failed: ${(err as Error).message}\n`);
  process.exit(1);
});
