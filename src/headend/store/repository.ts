/**
 * The head-end's storage contract. The license server, provisioning authority and domain
 * controller see only this interface, so that a PostgreSQL backend (for a replicated
 * head-end behind a load balancer) can replace the embedded SQLite one.
 *
 * Rules every backend follows (docs/headend.md spells them out per method):
 * - Every method returns a promise and fails only with a coded error: STORE_FAILED (HTTP 503)
 *   for anything the database did, never a driver's own error type.
 * - A method is one unit of work. Read-modify-write flows (joining a domain, rotating a
 *   domain key, admitting a provisioning attempt, recording a license, releasing one,
 *   remembering a nonce, revoking a device) are single methods that run in one database
 *   transaction, so the service layer never holds a transaction open across an `await`
 *   (SQLite: one synchronous `BEGIN IMMEDIATE` transaction; PostgreSQL: one transaction
 *   with the isolation, row locks or unique constraints named on each method).
 * - Outcomes a caller must tell apart (a full domain, a released license, a lost race) are
 *   returned as values, not thrown, so that a backend never has to map its own exceptions
 *   onto business refusals.
 * - Reads that are not part of a method's unit of work may be served by a replica that lags
 *   by a few seconds, except where a method says otherwise.
 */
export interface HeadendRepository {
  /** The schema version after migrations. */
  schemaVersion(): Promise<number>;
  /** Closes the connection (idempotent); later calls fail with STORE_FAILED. */
  close(): Promise<void>;

  /** A service identity (operator PKI) by role. */
  getServiceIdentity(role: string): Promise<ServiceIdentityRow | undefined>;
  /**
   * Stores a service identity unless the role already has one, and returns the stored row:
   * when two processes create the PKI at once, both end up with the first writer's.
   * Atomicity: insert-if-absent on the primary key (PostgreSQL: `ON CONFLICT DO NOTHING`
   * then `SELECT`).
   */
  insertServiceIdentity(row: ServiceIdentityRow): Promise<ServiceIdentityRow>;

  /** Every stored server flag (`headend flags`), by name. Read from the primary. */
  getFlags(): Promise<Record<string, string>>;
  /** Sets a server flag, or removes it (`value` null) so that the default applies again. */
  setFlag(name: string, value: string | null, at: number): Promise<void>;

  /** A device by id. */
  getDevice(id: string): Promise<DeviceRow | undefined>;
  /** Every device, oldest first. */
  listDevices(): Promise<DeviceRow[]>;
  /**
   * Admits one provisioning attempt, atomically: drops attempts older than
   * `attempt.windowStart` (of every hardware identity), refuses hardware with a revoked
   * device, otherwise records the attempt and counts this hardware's attempts in the
   * window (this one included). Also returns the device already registered under
   * `attempt.deviceId`. PostgreSQL: one transaction; the count must see concurrent
   * attempts of the same hardware, so take `pg_advisory_xact_lock(hash(hardware id))` (or
   * run SERIALIZABLE and retry on 40001) before inserting.
   */
  admitProvisioning(attempt: ProvisioningAttempt): Promise<ProvisioningAdmission>;
  /**
   * Records a provisioned device (a new one, or a new certificate for a known key),
   * atomically with a last revocation check: when the device or any device of its hardware
   * was revoked meanwhile, nothing is written and the answer is 'revoked'. A known device
   * keeps its first provisioning time and its status. PostgreSQL: one transaction with
   * `SELECT … FOR UPDATE` on the hardware's device rows, then `INSERT … ON CONFLICT (id)
   * DO UPDATE`.
   */
  recordProvisioning(row: DeviceRow): Promise<'recorded' | 'revoked'>;
  /**
   * Revokes a device (compare-and-set on its status): `changed` is false when it was
   * already revoked, and then its first revocation time and reason are kept. Undefined:
   * no such device. PostgreSQL: `UPDATE … WHERE status <> 'revoked' RETURNING`.
   */
  revokeDevice(id: string, at: number, reason: string): Promise<DeviceRevocation | undefined>;

  /** Creates or replaces a policy (JSON of a PolicySpec). */
  putPolicy(name: string, specJson: string, at: number): Promise<void>;
  /** A policy's JSON. */
  getPolicy(name: string): Promise<string | undefined>;
  /** Every policy, by name. */
  listPolicies(): Promise<{ name: string; spec: string }[]>;

  /**
   * Registers a content key unless its KID exists (content keys never change): false when
   * the KID was already registered, and then nothing is written. Unique constraint on kid.
   */
  insertContentKey(row: ContentKeyRow): Promise<boolean>;
  /** A content key by KID (32 lowercase hex digits). */
  getContentKey(kid: string): Promise<ContentKeyRow | undefined>;
  /** The content keys of these KIDs that exist, in the order asked (one round trip). */
  getContentKeys(kids: readonly string[]): Promise<ContentKeyRow[]>;
  /** Every content key, oldest first. */
  listContentKeys(): Promise<ContentKeyRow[]>;
  /** The content keys of one content id, by KID. */
  contentKeysByContentId(contentId: string): Promise<ContentKeyRow[]>;
  /** Assigns a policy to a content key; false when no such KID. */
  setContentPolicy(kid: string, policy: string): Promise<boolean>;

  /**
   * Creates a subscription root, or changes only the policy of an existing one: its secret
   * and creation time are written once and never replaced. Returns the stored row.
   * PostgreSQL: `INSERT … ON CONFLICT (id) DO UPDATE SET policy = excluded.policy RETURNING`.
   */
  putRoot(row: RootRow): Promise<RootRow>;
  /** A root by id. */
  getRoot(id: string): Promise<RootRow | undefined>;
  /** Every root, by id. */
  listRoots(): Promise<RootRow[]>;

  /**
   * Records a request nonce; false when it was seen before (a replay, to this worker or any
   * other). Expired nonces (before `now`) are dropped. Must be decided by the primary:
   * a unique constraint on the nonce, `INSERT … ON CONFLICT DO NOTHING`, never a
   * read-then-insert.
   */
  rememberNonce(nonce: string, expiresAt: number, now: number): Promise<boolean>;

  /**
   * Records an issued license. A new (id, device) is inserted. An existing one (a renewal,
   * or a root license asked for again) gets the new issue and expiry times, status active
   * and one more renewal, provided that the row is a new issue (`renewals` 0) or the stored
   * license is still active: a renewal of a license released meanwhile writes nothing and
   * answers false. One statement (`INSERT … ON CONFLICT … DO UPDATE … WHERE`), atomic in
   * both backends.
   */
  recordLicense(row: LicenseRow): Promise<boolean>;
  /** A license of a device. */
  getLicense(id: string, deviceId: string): Promise<LicenseRow | undefined>;
  /**
   * Releases a license (compare-and-set active → released): 'released' the first time,
   * 'already-released' after that (the first release time is kept), 'unknown' when the
   * device holds no such license. PostgreSQL: `UPDATE … WHERE status = 'active'`, and on
   * no row a `SELECT` in the same transaction to tell the two other answers apart.
   */
  releaseLicense(id: string, deviceId: string, at: number): Promise<LicenseRelease>;
  /** How many licenses were issued (rows, not renewals). */
  countLicenses(): Promise<number>;

  /**
   * Creates an account with its first domain key, or changes the limits and hold of an
   * existing one: its domain id, revision, key and creation time are never replaced here
   * (see {@link rotateDomainKey}). Returns the stored row. PostgreSQL: `INSERT … ON CONFLICT
   * (id) DO UPDATE SET max_devices, service_id, service_hold RETURNING`.
   */
  putAccount(row: AccountRow): Promise<AccountRow>;
  /** An account by id. */
  getAccount(id: string): Promise<AccountRow | undefined>;
  /** Every account, by id. */
  listAccounts(): Promise<AccountRow[]>;
  /** The account whose domain holds this device. */
  accountOfDevice(deviceId: string): Promise<AccountRow | undefined>;
  /** An account and its members, read together (one snapshot). */
  getDomain(accountId: string): Promise<DomainRows | undefined>;
  /**
   * Adds a device to an account's domain, atomically with the limit check: 'full' when the
   * domain already has `maxDevices` other members, 'unknown-account' when there is no such
   * account or `domainId` (when not empty) is not its domain. A member that joins again
   * keeps its place and gets its new friendly name. The account row returned is the one the
   * decision was made on (its revision is the key the device receives). PostgreSQL: one
   * transaction, `SELECT … FROM accounts WHERE id = $1 FOR UPDATE` first, so that two
   * joins to one domain are serialized and cannot both take its last place.
   */
  joinDomain(join: DomainJoin): Promise<DomainJoinResult>;
  /**
   * Replaces a domain's key pair, optionally removing a member in the same transaction
   * (leave, or removal by the operator). Compare-and-set on the revision: the new key is
   * sealed for `expectedRevision + 1` by the caller, so when another rotation won the race
   * nothing is written, the answer is 'stale-revision', and the caller re-reads and retries.
   * 'not-member' (nothing written) when `removeDeviceId` is not in the domain.
   * PostgreSQL: one transaction, `DELETE` of the member, then
   * `UPDATE accounts … WHERE id = $1 AND revision = $2`; roll back when either touched no row.
   */
  rotateDomainKey(rotation: DomainKeyRotation): Promise<DomainKeyRotationResult>;

  // Fleet (issue 5): revocation lists, commands, device status. docs/headend.md "Fleet".

  /**
   * Records a revocation entry unless (kind, value) is already revoked (then nothing is
   * written, the first time and reason are kept, and `added` is false). A new entry bumps
   * the fleet revision, so that the publisher issues a new list. One transaction.
   */
  addRevocation(row: RevocationInput): Promise<{ added: boolean; revision: number }>;
  /** Every revocation entry, oldest first. */
  listRevocations(): Promise<RevocationRow[]>;
  /** The entries among these values (one round trip; the license server's check). */
  findRevocations(query: RevocationQuery): Promise<RevocationRow[]>;
  /**
   * One snapshot (one read transaction) of what a new list is built from: every entry, the
   * fleet revision and the latest issued list.
   */
  revocationSnapshot(): Promise<RevocationSnapshot>;
  /** The latest issued list (highest number), if any. */
  latestRevocationList(): Promise<IssuedListRow | undefined>;
  /**
   * Records an issued list, compare-and-set on the list number: 'recorded' only when the
   * latest issued number is still `row.number - 1` (0: none), 'stale' otherwise (another
   * process issued meanwhile; nothing written). PostgreSQL: primary key on number plus the
   * check in one transaction.
   */
  recordRevocationList(row: IssuedListRow): Promise<'recorded' | 'stale'>;

  /** Queues a command for a device. */
  queueFleetCommand(row: FleetCommandInput): Promise<void>;
  /**
   * Commands not acked and not expired at `now` (of one device, or all), oldest first; with
   * `unpublishedOnly`, only those never published.
   */
  pendingFleetCommands(
    now: number,
    opts?: { deviceId?: string; unpublishedOnly?: boolean },
  ): Promise<FleetCommandRow[]>;
  /** Marks a command published (the first time is kept). */
  markFleetCommandPublished(id: string, at: number): Promise<void>;
  /**
   * Records a device's ack: of a command (its outcome; false when the command is unknown or
   * for another device), and in every case the list number the device applied (never
   * lowered). One transaction.
   */
  recordFleetAck(ack: FleetAckInput): Promise<boolean>;
  /**
   * Records a device status unless an equally new or newer one is stored ('stale'): a
   * retained status redelivered after a reconnect changes nothing. One statement.
   */
  recordDeviceStatus(status: DeviceStatusInput): Promise<'recorded' | 'stale'>;
  /** Marks a device offline (its broker last will). */
  markDeviceOffline(deviceId: string, at: number): Promise<void>;
  /** Fleet status of every device that reported, by id. */
  listFleetDevices(): Promise<FleetDeviceRow[]>;
}

/** Kinds of revocation entries (RevocationEntry.Kind, lowercase). */
export type RevocationKind = 'device' | 'license' | 'key' | 'content';

/** A revocation to record. */
export interface RevocationInput {
  readonly kind: RevocationKind;
  /** Device id, license id, KID (32 lowercase hex digits) or content id. */
  readonly value: string;
  readonly revokedAt: number;
  readonly reason: string;
}

/** A stored revocation; `revision` is the fleet revision its recording made. */
export interface RevocationRow extends RevocationInput {
  readonly revision: number;
}

/** Values to look up among the revocations. */
export interface RevocationQuery {
  readonly deviceIds?: readonly string[];
  readonly licenseIds?: readonly string[];
  readonly kids?: readonly string[];
  readonly contentIds?: readonly string[];
}

/** An issued, signed revocation list. */
export interface IssuedListRow {
  readonly number: number;
  /** The fleet revision it covers. */
  readonly revision: number;
  readonly issuedAt: number;
  readonly nextUpdate: number;
  /** The SignedMessage (FLEET_REVOCATION_LIST) bytes. */
  readonly signed: Buffer;
}

/** What a list is built from. */
export interface RevocationSnapshot {
  readonly entries: RevocationRow[];
  readonly revision: number;
  readonly latest: IssuedListRow | undefined;
}

/** A command to queue (`action`: FleetCommand.Action number). */
export interface FleetCommandInput {
  readonly id: string;
  readonly deviceId: string;
  readonly action: number;
  readonly argument: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

/** A stored command with its publication and last ack. */
export interface FleetCommandRow extends FleetCommandInput {
  readonly publishedAt: number | null;
  readonly ackedAt: number | null;
  readonly ackOk: boolean | null;
  readonly ackCode: number | null;
  readonly ackMessage: string | null;
}

/** A verified ack. */
export interface FleetAckInput {
  readonly deviceId: string;
  /** Empty for an ack of a revocation list. */
  readonly commandId: string;
  readonly ok: boolean;
  readonly errorCode: number;
  readonly message: string;
  readonly listNumber: number;
  readonly at: number;
}

/** A verified status. */
export interface DeviceStatusInput {
  readonly deviceId: string;
  readonly online: boolean;
  readonly agentVersion: string;
  readonly licenseCount: number;
  readonly listNumber: number;
  readonly outputStatus: string;
  readonly reportedAt: number;
  readonly at: number;
}

/** A device's fleet status: the last verified status, and when it was stored. */
export interface FleetDeviceRow extends Omit<DeviceStatusInput, 'at'> {
  readonly updatedAt: number;
}

/** A certificate and sealed private key of an operator service (root CA, license server...). */
export interface ServiceIdentityRow {
  readonly role: string;
  readonly certDer: Buffer;
  readonly sealedKey: Buffer;
  readonly createdAt: number;
}

/** A provisioned device. */
export interface DeviceRow {
  readonly id: string;
  readonly hardwareId: string;
  readonly publicKey: Buffer;
  readonly certDer: Buffer;
  readonly serial: string;
  readonly agentVersion: string;
  readonly securityLevel: number;
  readonly platform: string;
  readonly model: string;
  readonly status: 'active' | 'revoked';
  readonly provisionedAt: number;
  readonly revokedAt: number | null;
  readonly revokeReason: string | null;
}

/** One provisioning attempt to admit. */
export interface ProvisioningAttempt {
  /** Hex SHA-256 of the hardware identity. */
  readonly hardwareId: string;
  /** The id of the key to certify. */
  readonly deviceId: string;
  readonly at: number;
  /** Start of the rate-limit window: older attempts are forgotten. */
  readonly windowStart: number;
}

/** What {@link HeadendRepository.admitProvisioning} decided. */
export type ProvisioningAdmission =
  | { readonly status: 'hardware-revoked' }
  | {
      readonly status: 'admitted';
      /** Attempts of this hardware in the window, this one included. */
      readonly attempts: number;
      /** The device already registered with this key, if any. */
      readonly known: DeviceRow | undefined;
    };

/** A revocation's outcome. */
export interface DeviceRevocation {
  readonly device: DeviceRow;
  /** False when the device was already revoked (nothing changed). */
  readonly changed: boolean;
}

/** A content key, sealed at rest. `kid` is 32 lowercase hex digits. */
export interface ContentKeyRow {
  readonly kid: string;
  readonly sealedKey: Buffer;
  readonly contentId: string;
  readonly policy: string | null;
  readonly trackType: number;
  readonly createdAt: number;
}

/** A subscription root: leaf licenses name it; its secret derives per-device root keys. */
export interface RootRow {
  readonly id: string;
  readonly policy: string | null;
  readonly sealedSecret: Buffer;
  readonly createdAt: number;
}

/** An issued license (for renewal, release and audit). */
export interface LicenseRow {
  readonly id: string;
  readonly deviceId: string;
  readonly contentId: string;
  readonly kids: string;
  readonly policy: string;
  readonly kind: 'simple' | 'root' | 'leaf';
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly status: 'active' | 'released';
  readonly renewals: number;
  /** When it was first released (null while active). */
  readonly releasedAt?: number | null;
}

/** A release's outcome. */
export type LicenseRelease = 'released' | 'already-released' | 'unknown';

/** A customer account: its domain, and the service's flags for it. */
export interface AccountRow {
  readonly id: string;
  readonly domainId: string;
  readonly serviceId: string;
  readonly maxDevices: number;
  readonly revision: number;
  readonly domainPublicKey: Buffer | null;
  readonly sealedDomainKey: Buffer | null;
  /** When set, license requests for this account answer 6007 with this custom data. */
  readonly serviceHold: string | null;
  readonly createdAt: number;
}

/** A device in an account's domain. */
export interface MemberRow {
  readonly accountId: string;
  readonly deviceId: string;
  readonly friendlyName: string;
  readonly joinedAt: number;
}

/** An account with its members. */
export interface DomainRows {
  readonly account: AccountRow;
  /** Oldest member first. */
  readonly members: MemberRow[];
}

/** A device asking to join a domain. */
export interface DomainJoin {
  readonly accountId: string;
  /** The domain id the device names, or '' for "the account's domain". */
  readonly domainId: string;
  readonly deviceId: string;
  readonly friendlyName: string;
  readonly at: number;
}

/** What {@link HeadendRepository.joinDomain} decided. */
export type DomainJoinResult =
  | { readonly status: 'joined'; readonly account: AccountRow; readonly rejoined: boolean }
  | { readonly status: 'full'; readonly account: AccountRow }
  | { readonly status: 'unknown-account' };

/** A new domain key pair for the revision after `expectedRevision`. */
export interface DomainKeyRotation {
  readonly accountId: string;
  /** The revision the caller read; the new key is sealed for `expectedRevision + 1`. */
  readonly expectedRevision: number;
  readonly publicKey: Buffer;
  readonly sealedKey: Buffer;
  /** Remove this member in the same transaction (leave, removal). */
  readonly removeDeviceId?: string;
}

/** What {@link HeadendRepository.rotateDomainKey} did. */
export type DomainKeyRotationResult =
  'rotated' | 'stale-revision' | 'not-member' | 'unknown-account';
