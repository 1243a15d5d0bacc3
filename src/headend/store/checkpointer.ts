import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** Tuning of {@link startCheckpointer}. */
export interface CheckpointerOptions {
  /** Pause between checkpoint passes, ms (default 100). */
  readonly intervalMs?: number;
  /**
   * WAL size (frames, 4 KiB pages) from which a pass repeats until the WAL is entirely
   * copied, so that the next writer starts it over (default 8192, 32 MiB).
   */
  readonly drainFrames?: number;
  /**
   * WAL size (frames) from which a pass forces that restart (default 32768, 128 MiB).
   */
  readonly restartFrames?: number;
}

/** A running background checkpointer. */
export interface Checkpointer {
  /** Stops the thread and closes its connection; idempotent. */
  stop(): Promise<void>;
}

/**
 * The thread's code, plain CommonJS evaluated as-is (no loader, so it runs the same from
 * sources under tsx or vitest and from the build). It opens its own connection, which never
 * writes rows: it only copies committed WAL frames into the database file.
 *
 * Each pass is a PASSIVE checkpoint: it takes no lock that a writer or a reader waits for.
 * A writer starts the WAL over when it finds it entirely copied and no reader in it, and
 * doing so writes and syncs a new WAL header inside that writer's commit; so this is left
 * to happen now and then: only once the WAL has grown past `drainFrames` does a pass repeat
 * while the previous one left frames committed meanwhile, until the WAL is entirely copied.
 * Should steady writes never leave such a moment, from `restartFrames` on the pass asks
 * for RESTART, which holds the write lock to copy the few frames the passive pass left and
 * to wait for the readers of the old WAL (its busy timeout bounds the wait; on failure the
 * next pass tries again). Failures are reported to the parent, which then turns SQLite's
 * automatic checkpoint back on.
 */
const THREAD_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = ' + workerData.busyMs);
db.pragma('wal_autocheckpoint = 0');
const checkpoint = (mode) => db.pragma('wal_checkpoint(' + mode + ')')[0];
let timer;
function pass() {
  try {
    let r = checkpoint('PASSIVE');
    if (r.log >= workerData.drainFrames)
      for (let n = 0, prev = -1; n < 5 && r.busy === 0 && r.log !== prev; n++) {
        prev = r.log;
        r = checkpoint('PASSIVE');
      }
    if (r.log >= workerData.restartFrames) checkpoint('RESTART');
  } catch (err) {
    // A lock another connection holds is for the next pass; anything else ends the thread.
    if (!String(err && err.code).startsWith('SQLITE_BUSY'))
      return parentPort.postMessage({ type: 'failed', message: String(err && err.message) });
  }
  timer = setTimeout(pass, workerData.intervalMs);
}
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearTimeout(timer);
  try { db.close(); } finally { parentPort.close(); }
});
timer = setTimeout(pass, workerData.intervalMs);
`;

/**
 * Checkpoints `file` (a WAL-mode SQLite database) from a worker thread, so that the
 * connections that serve requests can run with `wal_autocheckpoint = 0`: with SQLite's
 * automatic checkpoint, the commit that crosses the threshold copies the WAL back and syncs
 * the database file inside the request's synchronous call, blocking the event loop for
 * milliseconds (longer when the disk is busy). Checkpointing does not change what a commit
 * guarantees: a transaction is in the WAL when its call returns, whoever copies it later.
 *
 * `onFailure` is called once if the thread fails (it then stops); the caller should turn
 * the automatic checkpoint back on.
 */
export function startCheckpointer(
  file: string,
  onFailure: (message: string) => void,
  opts: CheckpointerOptions = {},
): Checkpointer {
  const worker = new Worker(THREAD_CODE, {
    eval: true,
    // No loader or profiler flags of the parent: the thread needs none.
    execArgv: [],
    workerData: {
      driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      file,
      busyMs: 50,
      intervalMs: opts.intervalMs ?? 100,
      drainFrames: opts.drainFrames ?? 8192,
      restartFrames: opts.restartFrames ?? 32768,
    },
  });
  worker.unref();
  let stopping = false;
  let failed = false;
  const fail = (message: string): void => {
    if (failed || stopping) return;
    failed = true;
    onFailure(message);
    void worker.terminate();
  };
  worker.on('message', (m: { type?: string; message?: string }) => {
    if (m?.type === 'failed') fail(m.message ?? 'checkpoint failed');
  });
  worker.on('error', (err: Error) => fail(err.message));
  worker.on('exit', (code) => fail(`checkpointer exited (${code})`));
  let stopped: Promise<void> | undefined;
  return {
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        stopping = true;
        if (failed) return resolve();
        const kill = setTimeout(() => void worker.terminate(), 2000);
        kill.unref();
        worker.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        // Until it has exited, the thread keeps the process alive (a caller awaiting this
        // with nothing else pending would otherwise see the process end first).
        worker.ref();
        worker.postMessage('stop');
      })),
  };
}
