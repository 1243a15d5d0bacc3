import type BetterSqlite3 from 'better-sqlite3';
import { kwError } from '../../errors/index.js';
import { MIGRATIONS } from './migrations.js';
import type {
  AccountRow,
  ContentKeyRow,
  DeviceRow,
  HeadendRepository,
  LicenseRow,
  MemberRow,
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
  issued_at AS issuedAt, expires_at AS expiresAt, status, renewals`;

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
 * block the writer, with a busy timeout so that cluster workers sharing the file wait for
 * each other's short write transactions instead of failing.
 */
export class SqliteStore implements HeadendRepository {
  private readonly db: Db;
  private readonly version: number;
  private readonly stmts = new Map<string, BetterSqlite3.Statement>();

  constructor(Database: DatabaseCtor, file: string) {
    try {
      this.db = new Database(file);
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('journal_mode = WAL');
      // NORMAL is durable across application crashes in WAL mode; only an OS crash can
      // lose the last transactions, which the devices then simply retry.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.version = migrate(this.db);
    } catch (err) {
      if ((err as { code?: string }).code === 'STORE_FAILED') throw err;
      throw kwError('STORE_FAILED', `cannot open ${file}: ${(err as Error).message}`, {}, err);
    }
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

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  schemaVersion(): number {
    return this.version;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  getServiceIdentity(role: string): ServiceIdentityRow | undefined {
    return this.one(
      `SELECT role, cert_der AS certDer, sealed_key AS sealedKey, created_at AS createdAt
       FROM service_identities WHERE role = ?`,
      role,
    );
  }

  putServiceIdentity(r: ServiceIdentityRow): void {
    this.run(
      `INSERT INTO service_identities (role, cert_der, sealed_key, created_at) VALUES (?, ?, ?, ?)`,
      r.role,
      r.certDer,
      r.sealedKey,
      r.createdAt,
    );
  }

  upsertDevice(r: DeviceRow): void {
    this.run(
      `INSERT INTO devices (id, hardware_id, public_key, cert_der, serial, agent_version,
        security_level, platform, model, status, provisioned_at, revoked_at, revoke_reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET cert_der = excluded.cert_der,
        agent_version = excluded.agent_version, security_level = excluded.security_level,
        serial = excluded.serial, hardware_id = excluded.hardware_id`,
      r.id,
      r.hardwareId,
      r.publicKey,
      r.certDer,
      r.serial,
      r.agentVersion,
      r.securityLevel,
      r.platform,
      r.model,
      r.status,
      r.provisionedAt,
      r.revokedAt,
      r.revokeReason,
    );
  }

  getDevice(id: string): DeviceRow | undefined {
    return this.one(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE id = ?`, id);
  }

  listDevices(): DeviceRow[] {
    return this.all(`SELECT ${DEVICE_COLUMNS} FROM devices ORDER BY provisioned_at, id`);
  }

  revokeDevice(id: string, at: number, reason: string): boolean {
    return (
      this.run(
        `UPDATE devices SET status = 'revoked', revoked_at = ?, revoke_reason = ?
         WHERE id = ? AND status <> 'revoked'`,
        at,
        reason,
        id,
      ) > 0
    );
  }

  isHardwareRevoked(hardwareId: string): boolean {
    return (
      this.one(
        `SELECT 1 AS x FROM devices WHERE hardware_id = ? AND status = 'revoked' LIMIT 1`,
        hardwareId,
      ) !== undefined
    );
  }

  countProvisioning(hardwareId: string, at: number, since: number): number {
    this.run(`INSERT INTO provisioning_events (hardware_id, at) VALUES (?, ?)`, hardwareId, at);
    const row = this.one<{ n: number }>(
      `SELECT COUNT(*) AS n FROM provisioning_events WHERE hardware_id = ? AND at >= ?`,
      hardwareId,
      since,
    );
    return row?.n ?? 0;
  }

  putPolicy(name: string, spec: string, at: number): void {
    this.run(
      `INSERT INTO policies (name, spec, updated_at) VALUES (?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at`,
      name,
      spec,
      at,
    );
  }

  getPolicy(name: string): string | undefined {
    return this.one<{ spec: string }>(`SELECT spec FROM policies WHERE name = ?`, name)?.spec;
  }

  listPolicies(): { name: string; spec: string }[] {
    return this.all(`SELECT name, spec FROM policies ORDER BY name`);
  }

  putContentKey(r: ContentKeyRow): void {
    this.run(
      `INSERT INTO content_keys (kid, sealed_key, content_id, policy, track_type, created_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
      r.kid,
      r.sealedKey,
      r.contentId,
      r.policy,
      r.trackType,
      r.createdAt,
    );
  }

  getContentKey(kid: string): ContentKeyRow | undefined {
    return this.one(`SELECT ${CONTENT_COLUMNS} FROM content_keys WHERE kid = ?`, kid);
  }

  listContentKeys(): ContentKeyRow[] {
    return this.all(`SELECT ${CONTENT_COLUMNS} FROM content_keys ORDER BY created_at, kid`);
  }

  contentKeysByContentId(contentId: string): ContentKeyRow[] {
    return this.all(
      `SELECT ${CONTENT_COLUMNS} FROM content_keys WHERE content_id = ? ORDER BY kid`,
      contentId,
    );
  }

  setContentPolicy(kid: string, policy: string): boolean {
    return this.run(`UPDATE content_keys SET policy = ? WHERE kid = ?`, policy, kid) > 0;
  }

  putRoot(r: RootRow): void {
    this.run(
      `INSERT INTO roots (id, policy, sealed_secret, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET policy = excluded.policy`,
      r.id,
      r.policy,
      r.sealedSecret,
      r.createdAt,
    );
  }

  getRoot(id: string): RootRow | undefined {
    return this.one(
      `SELECT id, policy, sealed_secret AS sealedSecret, created_at AS createdAt
       FROM roots WHERE id = ?`,
      id,
    );
  }

  listRoots(): RootRow[] {
    return this.all(
      `SELECT id, policy, sealed_secret AS sealedSecret, created_at AS createdAt
       FROM roots ORDER BY id`,
    );
  }

  rememberNonce(nonce: string, expiresAt: number, now: number): boolean {
    // Expired nonces are purged now and then rather than on every request.
    if (Math.random() < 0.01) this.run(`DELETE FROM nonces WHERE expires_at < ?`, now);
    return (
      this.run(`INSERT OR IGNORE INTO nonces (nonce, expires_at) VALUES (?, ?)`, nonce, expiresAt) >
      0
    );
  }

  recordLicense(r: LicenseRow): void {
    this.run(
      `INSERT INTO licenses (id, device_id, content_id, kids, policy, kind, issued_at, expires_at,
        status, renewals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id, device_id) DO UPDATE SET issued_at = excluded.issued_at,
        expires_at = excluded.expires_at, status = 'active', renewals = renewals + 1`,
      r.id,
      r.deviceId,
      r.contentId,
      r.kids,
      r.policy,
      r.kind,
      r.issuedAt,
      r.expiresAt,
      r.status,
      r.renewals,
    );
  }

  getLicense(id: string, deviceId: string): LicenseRow | undefined {
    return this.one(
      `SELECT ${LICENSE_COLUMNS} FROM licenses WHERE id = ? AND device_id = ?`,
      id,
      deviceId,
    );
  }

  markLicenseReleased(id: string, deviceId: string, at: number): boolean {
    return (
      this.run(
        `UPDATE licenses SET status = 'released', released_at = ? WHERE id = ? AND device_id = ?`,
        at,
        id,
        deviceId,
      ) > 0
    );
  }

  markLicenseRenewed(id: string, deviceId: string, at: number, expiresAt: number): void {
    this.run(
      `UPDATE licenses SET issued_at = ?, expires_at = ?, renewals = renewals + 1
       WHERE id = ? AND device_id = ?`,
      at,
      expiresAt,
      id,
      deviceId,
    );
  }

  countLicenses(): number {
    return this.one<{ n: number }>(`SELECT COUNT(*) AS n FROM licenses`)?.n ?? 0;
  }

  putAccount(r: AccountRow): void {
    this.run(
      `INSERT INTO accounts (id, domain_id, service_id, max_devices, revision, domain_public_key,
        sealed_domain_key, service_hold, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
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
  }

  getAccount(id: string): AccountRow | undefined {
    return this.one(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id = ?`, id);
  }

  listAccounts(): AccountRow[] {
    return this.all(`SELECT ${ACCOUNT_COLUMNS} FROM accounts ORDER BY id`);
  }

  setAccountKey(id: string, revision: number, publicKey: Buffer, sealed: Buffer): void {
    this.run(
      `UPDATE accounts SET revision = ?, domain_public_key = ?, sealed_domain_key = ? WHERE id = ?`,
      revision,
      publicKey,
      sealed,
      id,
    );
  }

  addMember(r: MemberRow): void {
    this.run(
      `INSERT INTO domain_members (account_id, device_id, friendly_name, joined_at)
       VALUES (?, ?, ?, ?) ON CONFLICT(account_id, device_id)
       DO UPDATE SET friendly_name = excluded.friendly_name`,
      r.accountId,
      r.deviceId,
      r.friendlyName,
      r.joinedAt,
    );
  }

  removeMember(accountId: string, deviceId: string): boolean {
    return (
      this.run(
        `DELETE FROM domain_members WHERE account_id = ? AND device_id = ?`,
        accountId,
        deviceId,
      ) > 0
    );
  }

  listMembers(accountId: string): MemberRow[] {
    return this.all(
      `SELECT account_id AS accountId, device_id AS deviceId, friendly_name AS friendlyName,
        joined_at AS joinedAt FROM domain_members WHERE account_id = ? ORDER BY joined_at`,
      accountId,
    );
  }

  accountOfDevice(deviceId: string): AccountRow | undefined {
    return this.one(
      `SELECT ${ACCOUNT_COLUMNS.replace(/(^|,\s*)(\w+)/g, '$1a.$2')} FROM accounts a
       JOIN domain_members m ON m.account_id = a.id WHERE m.device_id = ? LIMIT 1`,
      deviceId,
    );
  }
}
