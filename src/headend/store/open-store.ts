import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import { kwError } from '../../errors/index.js';
import type { HeadendRepository } from './repository.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';

/** File name of the head-end database inside the data dir. */
export const DATABASE_FILE = 'headend.db';

/**
 * Opens the embedded SQLite store of `dataDir`. better-sqlite3 is an optional dependency (the
 * device install leaves it out), so it is loaded here, and its absence is a coded error.
 */
export async function openSqliteStore(
  dataDir: string,
  opts: SqliteStoreOptions = {},
): Promise<HeadendRepository> {
  let mod: { default: typeof import('better-sqlite3') };
  try {
    mod = (await import('better-sqlite3')) as { default: typeof import('better-sqlite3') };
  } catch (err) {
    throw kwError(
      'HEADEND_DEPENDENCY_MISSING',
      `better-sqlite3 cannot be loaded: ${(err as Error).message}`,
      {},
      err,
    );
  }
  const file = path.join(dataDir, DATABASE_FILE);
  // Create the file 0600 first: SQLite gives its -wal and -shm files the database's mode.
  closeSync(openSync(file, 'a', 0o600));
  return new SqliteStore(mod.default, file, opts);
}
