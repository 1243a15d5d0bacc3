import type BetterSqlite3 from 'better-sqlite3';
import { isKeywardenError, kwError, type KeywardenError } from '../../errors/index.js';
import { startCheckpointer, type Checkpointer } from './checkpointer.js';
import { MIGRATIONS } from './migrations.js';
import type {
  AccountRow,
  ContentKeyRow,
  DeviceRevocation,
  DeviceRow,
  DomainJoin,
  DomainJoinResult,
  DomainKeyRotation,
  DomainKeyRotationResult,
  DomainRows,
  DeviceStatusInput,
  FleetAckInput,
  FleetCommandInput,
  FleetCommandRow,
  FleetDeviceRow,
  HeadendRepository,
  IssuedListRow,
  LicenseRelease,
  LicenseRow,
  MemberRow,
  ProvisioningAdmission,
  ProvisioningAttempt,
  RevocationInput,
  RevocationQuery,
  RevocationRow,
  RevocationSnapshot,
  RootRow,
  ServiceIdentityRow,
} from './repository.js';

type Db = BetterSqlite3.Database;
type DatabaseCtor = typeof BetterSqlite3;

const DEVICE_COLUMNS = `id, hardware_id AS hardwareId, public_key AS publicKey, cert_der AS certDer,
  serial, agent_version AS agentVersion, security_level AS securityLevel, platform, model,
  status, provisioned_at AS provisionedAt, revoked_at AS revokedAt, revoke_reason AS revokeReason`;
const CONTENT_COLUMNS = `kid, sealed_key AS sealedKey, content_id AS contentId, policy,
  track_type AS trackType, created_at AS createdAt`;
const ACCOUNT_COLUMNS = `id, domain_id AS domainId, service_id AS serviceId,
  max_devices AS maxDevices, revision, domain_public_key AS domainPublicKey,
  sealed_domain_key AS sealedDomainKey, service_hold AS serviceHold, created_at AS createdAt`;
const LICENSE_COLUMNS = `id, device_id AS deviceId, content_id AS contentId, kids, policy, kind,
  issued_at AS issuedAt, expires_at AS expiresAt, status, renewals, released_at AS releasedAt`;
const ROOT_COLUMNS = `id, policy, sealed_secret AS sealedSecret, created_at AS createdAt`;
const REVOCATION_COLUMNS = `kind, value, revoked_at AS revokedAt, reason, revision`;
const LIST_COLUMNS = `number, revision, issued_at AS issuedAt, next_update AS nextUpdate, signed`;
const COMMAND_COLUMNS = `id, device_id AS deviceId, action, argument, created_at AS createdAt,
  expires_at AS expiresAt, published_at AS publishedAt, acked_at AS ackedAt, ack_ok AS ackOk,
  ack_code AS ackCode, ack_message AS ackMessage`;
const FLEET_DEVICE_COLUMNS = `device_id AS deviceId, online, agent_version AS agentVersion,
  license_count AS licenseCount, list_number AS listNumber, output_status AS outputStatus,
  reported_at AS reportedAt, updated_at AS updatedAt`;
const MEMBER_COLUMNS = `account_id AS accountId, device_id AS deviceId,
  friendly_name AS friendlyName, joined_at AS joinedAt`;

/** How often expired nonces are deleted, at most (ms of the callers' clock). */
const NONCE_PRUNE_INTERVAL_MS = 100;
/**
 * Most expired nonces one prune deletes: each lies on its own page of the nonce index, so
 * a bounded batch keeps the request that prunes as quick as the others. A full batch lets
 * the next request prune again, so a backlog (after a restart) drains.
 */
const NONCE_PRUNE_BATCH = 256;
/**
 * How long an operation keeps trying while another process holds the write lock, ms: the
 * repository's bound (rule 6), after which it fails with STORE_FAILED. Default of
 * {@link SqliteStoreOptions.busyTimeoutMs}.
 */
const BUSY_TIMEOUT_MS = 5000;
/**
 * Pauses between those attempts, ms, the last one repeating; 0 is the next turn of the
 * event loop. Another worker's write transaction takes well under a millisecond, so the
 * first retries come at once and the pauses stay short.
 */
const BUSY_RETRY_MS = [0, 0, 0, 1, 1, 2, 2, 5];
/** SQLite's own automatic checkpoint threshold (pages), restored if the checkpointer fails. */
const AUTO_CHECKPOINT_PAGES = 1000;

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * Copy the WAL back into the database from a background thread instead of inside the
   * commit that crosses SQLite's threshold (see checkpointer.ts). For processes that serve
   * requests; short-lived ones (the CLI) leave it off.
   */
  readonly backgroundCheckpoints?: boolean;
  /** How long a method waits for another process's lock before STORE_FAILED; default 5 s. */
  readonly busyTimeoutMs?: number;
}

/** Thrown inside a transaction to roll it back when a compare-and-set lost its race. */
class LostRace extends Error {}

/** True for SQLITE_BUSY and its extended codes: another connection holds a lock. */
function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** Any failure of the database as the coded STORE_FAILED (coded errors pass through). */
function storeError(err: unknown): KeywardenError {
  if (isKeywardenError(err)) return err;
  return kwError('STORE_FAILED', `database: ${(err as Error).message}`, {}, err);
}

/**
 * Applies pending migrations in one IMMEDIATE transaction that re-reads `user_version`
 * inside it, so two processes starting at once cannot both apply the same step.
 */
function migrate(db: Db): number {
  db.transaction(() => {
    const current = db.pragma('user_version', { simple: true }) as number;
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v] ?? '');
    if (current < MIGRATIONS.length) db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
  return MIGRATIONS.length;
}

/**
 * The embedded backend: SQLite through better-sqlite3, in WAL mode so that readers never
 * block the writer; cluster workers sharing the file wait for each other's short write
 * transactions instead of failing.
 *
 * better-sqlite3 is synchronous: each method does all of its work, transaction included,
 * inside one synchronous call and hands back an already settled promise. No transaction is
 * ever open across an `await`, so requests interleaving on one worker cannot see each
 * other's half-done work, and an atomic method is one `BEGIN IMMEDIATE` (which takes the
 * write lock at once, so a read-then-write inside it cannot be overtaken by another worker).
 *
 * Waiting for another process's lock does not block the event loop: SQLite's own busy
 * handler sleeps inside the call (1, 2, 5, 10 ms and longer), stalling every request of the
 * worker, so once the database is open its busy timeout is 0 and a method that finds the
 * database locked is run again, whole, on a later turn of the event loop (it wrote nothing:
 * a transaction or a single statement that fails to take its lock has no effect), for up to
 * the busy timeout (5 s) in all.
 */
export class SqliteStore implements HeadendRepository {
  private readonly db: Db;
  private readonly version: number;
  private readonly stmts = new Map<string, BetterSqlite3.Statement>();
  private nextNoncePrune = Number.NEGATIVE_INFINITY;
  private checkpointer: Checkpointer | undefined;
  private readonly busyTimeoutMs: number;

  constructor(Database: DatabaseCtor, file: string, opts: SqliteStoreOptions = {}) {
    this.busyTimeoutMs = opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
    try {
      this.db = new Database(file);
      // Opening and migrating wait inside SQLite (two processes may start at once).
      this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      this.db.pragma('journal_mode = WAL');
      // NORMAL is durable across application crashes in WAL mode; only an OS crash can
      // lose the last transactions, which the devices then simply retry.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.version = migrate(this.db);
      // From here on, `op` waits for locks without blocking the event loop.
      this.db.pragma('busy_timeout = 0');
    } catch (err) {
      if (isKeywardenError(err, 'STORE_FAILED')) throw err;
      throw kwError('STORE_FAILED', `cannot open ${file}: ${(err as Error).message}`, {}, err);
    }
    if (opts.backgroundCheckpoints) {
      this.db.pragma('wal_autocheckpoint = 0');
      // Should the thread fail, commits checkpoint again as SQLite does by default.
      this.checkpointer = startCheckpointer(file, () => {
        if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`);
      });
    }
  }

  /**
   * Runs `fn` now and settles with its result, or with its failure as STORE_FAILED. When
   * another process holds the lock `fn` needs, `fn` runs again later (see the class).
   */
  private op<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      if (isBusy(err)) return this.retry(fn, performance.now() + this.busyTimeoutMs);
      return Promise.reject(storeError(err));
    }
  }

  /** Runs `fn` on later turns of the event loop until it finds no lock or `deadline` passes. */
  private retry<T>(fn: () => T, deadline: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let attempt = 0;
      const again = (): void => {
        try {
          resolve(fn());
        } catch (err) {
          if (isBusy(err) && performance.now() < deadline) schedule();
          else reject(storeError(err));
        }
      };
      const schedule = (): void => {
        const pause = BUSY_RETRY_MS[Math.min(attempt++, BUSY_RETRY_MS.length - 1)] ?? 1;
        if (pause === 0) setImmediate(again);
        else setTimeout(again, pause);
      };
      schedule();
    });
  }

  /** Runs `fn` in one IMMEDIATE transaction (synchronously: it must not await). */
  private tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  private stmt(sql: string): BetterSqlite3.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private all<T>(sql: string, ...params: unknown[]): T[] {
    return this.stmt(sql).all(...params) as T[];
  }

  private one<T>(sql: string, ...params: unknown[]): T | undefined {
    return this.stmt(sql).get(...params) as T | undefined;
  }

  private run(sql: string, ...params: unknown[]): number {
    return this.stmt(sql).run(...params).changes;
  }

  private device(id: string): DeviceRow | undefined {
    return this.one(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE id = ?`, id);
  }

  private account(id: string): AccountRow | undefined {
    return this.one(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id = ?`, id);
  }

  private members(accountId: string): MemberRow[] {
    return this.all(
      `SELECT ${MEMBER_COLUMNS} FROM domain_members WHERE account_id = ?
       ORDER BY joined_at, device_id`,
      accountId,
    );
  }

  schemaVersion(): Promise<number> {
    return Promise.resolve(this.version);
  }

  async close(): Promise<void> {
    await this.checkpointer?.stop();
    return this.op(() => {
      if (this.db.open) this.db.close();
    });
  }

  getServiceIdentity(role: string): Promise<ServiceIdentityRow | undefined> {
    return this.op(() =>
      this.one(
        `SELECT role, cert_der AS certDer, sealed_key AS sealedKey, created_at AS createdAt
         FROM service_identities WHERE role = ?`,
        role,
      ),
    );
  }

  insertServiceIdentity(r: ServiceIdentityRow): Promise<ServiceIdentityRow> {
    return this.op(() =>
      this.tx(() => {
        this.run(
          `INSERT INTO service_identities (role, cert_der, sealed_key, created_at)
           VALUES (?, ?, ?, ?) ON CONFLICT(role) DO NOTHING`,
          r.role,
          r.certDer,
          r.sealedKey,
          r.createdAt,
        );
        const stored = this.one<ServiceIdentityRow>(
          `SELECT role, cert_der AS certDer, sealed_key AS sealedKey, created_at AS createdAt
           FROM service_identities WHERE role = ?`,
          r.role,
        );
        if (!stored) throw kwError('STORE_FAILED', `service identity ${r.role} vanished`);
        return stored;
      }),
    );
  }

  getFlags(): Promise<Record<string, string>> {
    return this.op(() =>
      Object.fromEntries(
        this.all<{ name: string; value: string }>(`SELECT name, value FROM flags`).map((f) => [
          f.name,
          f.value,
        ]),
      ),
    );
  }

  setFlag(name: string, value: string | null, at: number): Promise<void> {
    return this.op(() => {
      if (value === null) this.run(`DELETE FROM flags WHERE name = ?`, name);
      else
        this.run(
          `INSERT INTO flags (name, value, updated_at) VALUES (?, ?, ?)
           ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
          name,
          value,
          at,
        );
    });
  }

  getDevice(id: string): Promise<DeviceRow | undefined> {
    return this.op(() => this.device(id));
  }

  listDevices(): Promise<DeviceRow[]> {
    return this.op(() =>
      this.all<DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices ORDER BY provisioned_at, id`),
    );
  }

  admitProvisioning(a: ProvisioningAttempt): Promise<ProvisioningAdmission> {
    return this.op(() =>
      this.tx((): ProvisioningAdmission => {
        this.run(`DELETE FROM provisioning_events WHERE at < ?`, a.windowStart);
        const revoked = this.one(
          `SELECT 1 AS x FROM devices WHERE hardware_id = ? AND status = 'revoked' LIMIT 1`,
          a.hardwareId,
        );
        if (revoked) return { status: 'hardware-revoked' };
        this.run(
          `INSERT INTO provisioning_events (hardware_id, at) VALUES (?, ?)`,
          a.hardwareId,
          a.at,
        );
        const row = this.one<{ n: number }>(
          `SELECT COUNT(*) AS n FROM provisioning_events WHERE hardware_id = ? AND at >= ?`,
          a.hardwareId,
          a.windowStart,
        );
        return { status: 'admitted', attempts: row?.n ?? 0, known: this.device(a.deviceId) };
      }),
    );
  }

  recordProvisioning(r: DeviceRow): Promise<'recorded' | 'revoked'> {
    return this.op(() =>
      this.tx(() => {
        const revoked = this.one(
          `SELECT 1 AS x FROM devices WHERE (hardware_id = ? OR id = ?) AND status = 'revoked'
           LIMIT 1`,
          r.hardwareId,
          r.id,
        );
        if (revoked) return 'revoked';
        this.run(
          `INSERT INTO devices (id, hardware_id, public_key, cert_der, serial, agent_version,
            security_level, platform, model, status, provisioned_at, revoked_at, revoke_reason)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, NULL, NULL)
           ON CONFLICT(id) DO UPDATE SET cert_der = excluded.cert_der,
            agent_version = excluded.agent_version, security_level = excluded.security_level,
            serial = excluded.serial, hardware_id = excluded.hardware_id,
            platform = excluded.platform, model = excluded.model`,
          r.id,
          r.hardwareId,
          r.publicKey,
          r.certDer,
          r.serial,
          r.agentVersion,
          r.securityLevel,
          r.platform,
          r.model,
          r.provisionedAt,
        );
        return 'recorded';
      }),
    );
  }

  revokeDevice(id: string, at: number, reason: string): Promise<DeviceRevocation | undefined> {
    return this.op(() =>
      this.tx(() => {
        const changed =
          this.run(
            `UPDATE devices SET status = 'revoked', revoked_at = ?, revoke_reason = ?
             WHERE id = ? AND status <> 'revoked'`,
            at,
            reason,
            id,
          ) > 0;
        const device = this.device(id);
        return device && { device, changed };
      }),
    );
  }

  putPolicy(name: string, spec: string, at: number): Promise<void> {
    return this.op(() => {
      this.run(
        `INSERT INTO policies (name, spec, updated_at) VALUES (?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at`,
        name,
        spec,
        at,
      );
    });
  }

  getPolicy(name: string): Promise<string | undefined> {
    return this.op(
      () => this.one<{ spec: string }>(`SELECT spec FROM policies WHERE name = ?`, name)?.spec,
    );
  }

  listPolicies(): Promise<{ name: string; spec: string }[]> {
    return this.op(() =>
      this.all<{ name: string; spec: string }>(`SELECT name, spec FROM policies ORDER BY name`),
    );
  }

  insertContentKey(r: ContentKeyRow): Promise<boolean> {
    return this.op(
      () =>
        this.run(
          `INSERT INTO content_keys (kid, sealed_key, content_id, policy, track_type, created_at)
           VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(kid) DO NOTHING`,
          r.kid,
          r.sealedKey,
          r.contentId,
          r.policy,
          r.trackType,
          r.createdAt,
        ) > 0,
    );
  }

  getContentKey(kid: string): Promise<ContentKeyRow | undefined> {
    return this.op(() =>
      this.one<ContentKeyRow>(`SELECT ${CONTENT_COLUMNS} FROM content_keys WHERE kid = ?`, kid),
    );
  }

  getContentKeys(kids: readonly string[]): Promise<ContentKeyRow[]> {
    return this.op(() => {
      if (kids.length === 0) return [];
      const rows = this.all<ContentKeyRow>(
        `SELECT ${CONTENT_COLUMNS} FROM content_keys WHERE kid IN (${kids.map(() => '?').join(',')})`,
        ...kids,
      );
      const byKid = new Map(rows.map((r) => [r.kid, r]));
      return kids.flatMap((k) => byKid.get(k) ?? []);
    });
  }

  listContentKeys(): Promise<ContentKeyRow[]> {
    return this.op(() =>
      this.all<ContentKeyRow>(
        `SELECT ${CONTENT_COLUMNS} FROM content_keys ORDER BY created_at, kid`,
      ),
    );
  }

  contentKeysByContentId(contentId: string): Promise<ContentKeyRow[]> {
    return this.op(() =>
      this.all<ContentKeyRow>(
        `SELECT ${CONTENT_COLUMNS} FROM content_keys WHERE content_id = ? ORDER BY kid`,
        contentId,
      ),
    );
  }

  setContentPolicy(kid: string, policy: string): Promise<boolean> {
    return this.op(
      () => this.run(`UPDATE content_keys SET policy = ? WHERE kid = ?`, policy, kid) > 0,
    );
  }

  putRoot(r: RootRow): Promise<RootRow> {
    return this.op(() =>
      this.tx(() => {
        this.run(
          `INSERT INTO roots (id, policy, sealed_secret, created_at) VALUES (?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET policy = excluded.policy`,
          r.id,
          r.policy,
          r.sealedSecret,
          r.createdAt,
        );
        const stored = this.one<RootRow>(`SELECT ${ROOT_COLUMNS} FROM roots WHERE id = ?`, r.id);
        if (!stored) throw kwError('STORE_FAILED', `root ${r.id} vanished`);
        return stored;
      }),
    );
  }

  getRoot(id: string): Promise<RootRow | undefined> {
    return this.op(() => this.one<RootRow>(`SELECT ${ROOT_COLUMNS} FROM roots WHERE id = ?`, id));
  }

  listRoots(): Promise<RootRow[]> {
    return this.op(() => this.all<RootRow>(`SELECT ${ROOT_COLUMNS} FROM roots ORDER BY id`));
  }

  rememberNonce(nonce: string, expiresAt: number, now: number): Promise<boolean> {
    return this.op(() => {
      // The prune is housekeeping, not part of the decision: its own statement.
      if (now >= this.nextNoncePrune) {
        const pruned = this.run(
          `DELETE FROM nonces WHERE rowid IN
            (SELECT rowid FROM nonces WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`,
          now,
          NONCE_PRUNE_BATCH,
        );
        this.nextNoncePrune = pruned < NONCE_PRUNE_BATCH ? now + NONCE_PRUNE_INTERVAL_MS : now;
      }
      // One statement decides: the primary key makes a replay insert nothing.
      return (
        this.run(
          `INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) ON CONFLICT(nonce) DO NOTHING`,
          nonce,
          expiresAt,
        ) > 0
      );
    });
  }

  recordLicense(r: LicenseRow): Promise<boolean> {
    return this.op(
      () =>
        this.run(
          `INSERT INTO licenses (id, device_id, content_id, kids, policy, kind, issued_at,
            expires_at, status, renewals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?)
           ON CONFLICT(id, device_id) DO UPDATE SET issued_at = excluded.issued_at,
            expires_at = excluded.expires_at, status = 'active', released_at = NULL,
            renewals = licenses.renewals + 1
           WHERE excluded.renewals = 0 OR licenses.status = 'active'`,
          r.id,
          r.deviceId,
          r.contentId,
          r.kids,
          r.policy,
          r.kind,
          r.issuedAt,
          r.expiresAt,
          r.renewals,
        ) > 0,
    );
  }

  getLicense(id: string, deviceId: string): Promise<LicenseRow | undefined> {
    return this.op(() =>
      this.one<LicenseRow>(
        `SELECT ${LICENSE_COLUMNS} FROM licenses WHERE id = ? AND device_id = ?`,
        id,
        deviceId,
      ),
    );
  }

  releaseLicense(id: string, deviceId: string, at: number): Promise<LicenseRelease> {
    return this.op(() =>
      this.tx((): LicenseRelease => {
        const released = this.run(
          `UPDATE licenses SET status = 'released', released_at = ?
           WHERE id = ? AND device_id = ? AND status = 'active'`,
          at,
          id,
          deviceId,
        );
        if (released > 0) return 'released';
        const row = this.one(
          `SELECT 1 AS x FROM licenses WHERE id = ? AND device_id = ?`,
          id,
          deviceId,
        );
        return row ? 'already-released' : 'unknown';
      }),
    );
  }

  countLicenses(): Promise<number> {
    return this.op(() => this.one<{ n: number }>(`SELECT COUNT(*) AS n FROM licenses`)?.n ?? 0);
  }

  putAccount(r: AccountRow): Promise<AccountRow> {
    return this.op(() =>
      this.tx(() => {
        this.run(
          `INSERT INTO accounts (id, domain_id, service_id, max_devices, revision,
            domain_public_key, sealed_domain_key, service_hold, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET service_id = excluded.service_id,
            max_devices = excluded.max_devices, service_hold = excluded.service_hold`,
          r.id,
          r.domainId,
          r.serviceId,
          r.maxDevices,
          r.revision,
          r.domainPublicKey,
          r.sealedDomainKey,
          r.serviceHold,
          r.createdAt,
        );
        const stored = this.account(r.id);
        if (!stored) throw kwError('STORE_FAILED', `account ${r.id} vanished`);
        return stored;
      }),
    );
  }

  getAccount(id: string): Promise<AccountRow | undefined> {
    return this.op(() => this.account(id));
  }

  listAccounts(): Promise<AccountRow[]> {
    return this.op(() =>
      this.all<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM accounts ORDER BY id`),
    );
  }

  accountOfDevice(deviceId: string): Promise<AccountRow | undefined> {
    return this.op(() =>
      this.one<AccountRow>(
        `SELECT ${ACCOUNT_COLUMNS.replace(/(^|,\s*)(\w+)/g, '$1a.$2')} FROM accounts a
         JOIN domain_members m ON m.account_id = a.id WHERE m.device_id = ?
         ORDER BY m.joined_at LIMIT 1`,
        deviceId,
      ),
    );
  }

  getDomain(accountId: string): Promise<DomainRows | undefined> {
    // A deferred transaction: both reads see one snapshot (WAL), and no write lock is taken.
    return this.op(() =>
      this.db.transaction(() => {
        const account = this.account(accountId);
        return account && { account, members: this.members(accountId) };
      })(),
    );
  }

  joinDomain(j: DomainJoin): Promise<DomainJoinResult> {
    return this.op(() =>
      this.tx((): DomainJoinResult => {
        const account = this.account(j.accountId);
        if (!account || (j.domainId !== '' && j.domainId !== account.domainId))
          return { status: 'unknown-account' };
        const members = this.members(account.id);
        const rejoined = members.some((m) => m.deviceId === j.deviceId);
        if (!rejoined && members.length >= account.maxDevices) return { status: 'full', account };
        this.run(
          `INSERT INTO domain_members (account_id, device_id, friendly_name, joined_at)
           VALUES (?, ?, ?, ?) ON CONFLICT(account_id, device_id)
           DO UPDATE SET friendly_name = excluded.friendly_name`,
          account.id,
          j.deviceId,
          j.friendlyName,
          j.at,
        );
        return { status: 'joined', account, rejoined };
      }),
    );
  }

  rotateDomainKey(r: DomainKeyRotation): Promise<DomainKeyRotationResult> {
    return this.op(() => {
      try {
        return this.tx((): DomainKeyRotationResult => {
          if (!this.account(r.accountId)) return 'unknown-account';
          if (
            r.removeDeviceId !== undefined &&
            this.run(
              `DELETE FROM domain_members WHERE account_id = ? AND device_id = ?`,
              r.accountId,
              r.removeDeviceId,
            ) === 0
          )
            return 'not-member';
          const rotated = this.run(
            `UPDATE accounts SET revision = ?, domain_public_key = ?, sealed_domain_key = ?
             WHERE id = ? AND revision = ?`,
            r.expectedRevision + 1,
            r.publicKey,
            r.sealedKey,
            r.accountId,
            r.expectedRevision,
          );
          // Roll the member removal back too: the caller retries both on the new revision.
          if (rotated === 0) throw new LostRace();
          return 'rotated';
        });
      } catch (err) {
        if (err instanceof LostRace) return 'stale-revision';
        throw err;
      }
    });
  }

  // Fleet.

  private latestList(): IssuedListRow | undefined {
    return this.one<IssuedListRow>(
      `SELECT ${LIST_COLUMNS} FROM revocation_lists ORDER BY number DESC LIMIT 1`,
    );
  }

  private fleetRevision(): number {
    return this.one<{ r: number }>(`SELECT revision AS r FROM fleet_state WHERE id = 1`)?.r ?? 0;
  }

  addRevocation(r: RevocationInput): Promise<{ added: boolean; revision: number }> {
    return this.op(() =>
      this.tx(() => {
        const exists = this.one(
          `SELECT 1 AS x FROM revocations WHERE kind = ? AND value = ?`,
          r.kind,
          r.value,
        );
        if (exists) return { added: false, revision: this.fleetRevision() };
        this.run(`UPDATE fleet_state SET revision = revision + 1 WHERE id = 1`);
        const revision = this.fleetRevision();
        this.run(
          `INSERT INTO revocations (kind, value, revoked_at, reason, revision)
           VALUES (?, ?, ?, ?, ?)`,
          r.kind,
          r.value,
          r.revokedAt,
          r.reason,
          revision,
        );
        return { added: true, revision };
      }),
    );
  }

  listRevocations(): Promise<RevocationRow[]> {
    return this.op(() =>
      this.all<RevocationRow>(
        `SELECT ${REVOCATION_COLUMNS} FROM revocations ORDER BY revision, kind, value`,
      ),
    );
  }

  findRevocations(q: RevocationQuery): Promise<RevocationRow[]> {
    return this.op(() => {
      const wanted: [string, readonly string[]][] = [
        ['device', q.deviceIds ?? []],
        ['license', q.licenseIds ?? []],
        ['key', q.kids ?? []],
        ['content', q.contentIds ?? []],
      ];
      const out: RevocationRow[] = [];
      for (const [kind, values] of wanted) {
        const list = values.filter((v) => v !== '');
        if (list.length === 0) continue;
        out.push(
          ...this.all<RevocationRow>(
            `SELECT ${REVOCATION_COLUMNS} FROM revocations
             WHERE kind = ? AND value IN (${list.map(() => '?').join(',')})`,
            kind,
            ...list,
          ),
        );
      }
      return out;
    });
  }

  revocationSnapshot(): Promise<RevocationSnapshot> {
    return this.op(() =>
      this.db.transaction(() => ({
        entries: this.all<RevocationRow>(
          `SELECT ${REVOCATION_COLUMNS} FROM revocations ORDER BY revision, kind, value`,
        ),
        revision: this.fleetRevision(),
        latest: this.latestList(),
      }))(),
    );
  }

  latestRevocationList(): Promise<IssuedListRow | undefined> {
    return this.op(() => this.latestList());
  }

  recordRevocationList(row: IssuedListRow): Promise<'recorded' | 'stale'> {
    return this.op(() =>
      this.tx(() => {
        if ((this.latestList()?.number ?? 0) !== row.number - 1) return 'stale';
        this.run(
          `INSERT INTO revocation_lists (number, revision, issued_at, next_update, signed)
           VALUES (?, ?, ?, ?, ?)`,
          row.number,
          row.revision,
          row.issuedAt,
          row.nextUpdate,
          row.signed,
        );
        return 'recorded';
      }),
    );
  }

  queueFleetCommand(c: FleetCommandInput): Promise<void> {
    return this.op(() => {
      this.run(
        `INSERT INTO fleet_commands (id, device_id, action, argument, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
        c.id,
        c.deviceId,
        c.action,
        c.argument,
        c.createdAt,
        c.expiresAt,
      );
    });
  }

  pendingFleetCommands(
    now: number,
    opts: { deviceId?: string; unpublishedOnly?: boolean } = {},
  ): Promise<FleetCommandRow[]> {
    return this.op(() => {
      const rows = this.all<Omit<FleetCommandRow, 'ackOk'> & { ackOk: number | null }>(
        `SELECT ${COMMAND_COLUMNS} FROM fleet_commands
         WHERE acked_at IS NULL AND expires_at > ?
           AND (? IS NULL OR device_id = ?) AND (? = 0 OR published_at IS NULL)
         ORDER BY created_at, id`,
        now,
        opts.deviceId ?? null,
        opts.deviceId ?? null,
        opts.unpublishedOnly ? 1 : 0,
      );
      return rows.map((r) => ({ ...r, ackOk: r.ackOk === null ? null : Boolean(r.ackOk) }));
    });
  }

  markFleetCommandPublished(id: string, at: number): Promise<void> {
    return this.op(() => {
      this.run(
        `UPDATE fleet_commands SET published_at = ? WHERE id = ? AND published_at IS NULL`,
        at,
        id,
      );
    });
  }

  recordFleetAck(a: FleetAckInput): Promise<boolean> {
    return this.op(() =>
      this.tx(() => {
        this.run(
          `INSERT INTO fleet_devices (device_id, online, list_number, updated_at)
           VALUES (?, 1, ?, ?) ON CONFLICT(device_id) DO UPDATE SET
            list_number = MAX(fleet_devices.list_number, excluded.list_number),
            updated_at = excluded.updated_at`,
          a.deviceId,
          a.listNumber,
          a.at,
        );
        if (a.commandId === '') return true;
        return (
          this.run(
            `UPDATE fleet_commands SET acked_at = ?, ack_ok = ?, ack_code = ?, ack_message = ?
             WHERE id = ? AND device_id = ?`,
            a.at,
            a.ok ? 1 : 0,
            a.errorCode,
            a.message,
            a.commandId,
            a.deviceId,
          ) > 0
        );
      }),
    );
  }

  recordDeviceStatus(st: DeviceStatusInput): Promise<'recorded' | 'stale'> {
    return this.op(() =>
      this.run(
        `INSERT INTO fleet_devices (device_id, online, agent_version, license_count,
          list_number, output_status, reported_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(device_id) DO UPDATE SET online = excluded.online,
          agent_version = excluded.agent_version, license_count = excluded.license_count,
          list_number = MAX(fleet_devices.list_number, excluded.list_number),
          output_status = excluded.output_status, reported_at = excluded.reported_at,
          updated_at = excluded.updated_at
         WHERE excluded.reported_at > fleet_devices.reported_at`,
        st.deviceId,
        st.online ? 1 : 0,
        st.agentVersion,
        st.licenseCount,
        st.listNumber,
        st.outputStatus,
        st.reportedAt,
        st.at,
      ) > 0
        ? 'recorded'
        : 'stale',
    );
  }

  markDeviceOffline(deviceId: string, at: number): Promise<void> {
    return this.op(() => {
      this.run(
        `INSERT INTO fleet_devices (device_id, online, updated_at) VALUES (?, 0, ?)
         ON CONFLICT(device_id) DO UPDATE SET online = 0, updated_at = excluded.updated_at`,
        deviceId,
        at,
      );
    });
  }

  listFleetDevices(): Promise<FleetDeviceRow[]> {
    return this.op(() =>
      this.all<Omit<FleetDeviceRow, 'online'> & { online: number }>(
        `SELECT ${FLEET_DEVICE_COLUMNS} FROM fleet_devices ORDER BY device_id`,
      ).map((r) => ({ ...r, online: Boolean(r.online) })),
    );
  }
}
