import { mkdir } from 'node:fs/promises';
import { applyFlags, flagsOfSettings } from './flags.js';
import { loadMasterKey, type MasterKeySource } from './master-key.js';
import { OperatorPki } from './pki/operator-pki.js';
import { KeySealer } from './sealing.js';
import { DEFAULT_SETTINGS, type HeadendSettings } from './settings.js';
import { StoredNonceRegistry } from './store/nonce-registry.js';
import { openSqliteStore } from './store/open-store.js';
import type { HeadendRepository } from './store/repository.js';

/** How to open a head-end. */
export interface HeadendOptions {
  /** The data dir: database, master key file. Created if missing. */
  readonly dataDir: string;
  /**
   * Business settings; defaults from {@link DEFAULT_SETTINGS}. The server flags among them
   * (`minAgentVersion`, `provisioningLimit`: see SERVER_FLAGS) are written to the database
   * when given, and from then on read from it.
   */
  readonly settings?: Partial<HeadendSettings>;
  /** Environment (the master key may come from it); default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Clock, ms since the epoch (tests move it). */
  readonly clock?: () => number;
  /**
   * Checkpoint the SQLite WAL from a background thread rather than in the request that
   * commits (see store/checkpointer.ts). Cluster workers turn it on; default off.
   */
  readonly backgroundCheckpoints?: boolean;
}

/**
 * Everything the head-end's services share: the store, the sealer for secrets at rest, the
 * operator PKI, the replay window, the settings and the clock.
 */
export class HeadendContext {
  private constructor(
    readonly store: HeadendRepository,
    readonly sealer: KeySealer,
    readonly pki: OperatorPki,
    /** The settings this process was opened with; server flags: see {@link currentSettings}. */
    readonly settings: HeadendSettings,
    readonly clock: () => number,
    readonly masterKeySource: MasterKeySource,
    readonly nonces: StoredNonceRegistry,
  ) {}

  /** Opens (first run: creates) the head-end state in `opts.dataDir`. */
  static async open(opts: HeadendOptions): Promise<HeadendContext> {
    await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
    const master = await loadMasterKey(opts.dataDir, opts.env);
    const sealer = new KeySealer(master.key);
    master.key.fill(0);
    const store = await openSqliteStore(opts.dataDir, {
      backgroundCheckpoints: opts.backgroundCheckpoints ?? false,
    });
    const clock = opts.clock ?? Date.now;
    try {
      const explicit = opts.settings ?? {};
      const flags = flagsOfSettings(explicit);
      const pki = await OperatorPki.open(store, sealer, clock());
      for (const [name, value] of flags) await store.setFlag(name, value, clock());
      const settings = { ...DEFAULT_SETTINGS, ...explicit };
      const nonces = new StoredNonceRegistry(store, 2 * settings.maxSkewMs);
      return new HeadendContext(store, sealer, pki, settings, clock, master.source, nonces);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /**
   * The settings in force now: this process's settings with the server flags stored in the
   * database over them, so that every worker applies a flag changed by `headend flags set`
   * on its next request.
   */
  async currentSettings(): Promise<HeadendSettings> {
    return applyFlags(this.settings, await this.store.getFlags());
  }

  /** Closes the database. */
  close(): Promise<void> {
    return this.store.close();
  }
}
