/**
 * The head-end's storage contract. The license server, provisioning authority and domain
 * controller see only this interface, so a PostgreSQL backend (for a replicated head-end)
 * can replace the embedded SQLite one. Every method is synchronous-or-async agnostic at the
 * call sites that matter: the SQLite backend answers synchronously, wrapped in promises
 * nowhere, because better-sqlite3's synchronous API is its fast path.
 */
export interface HeadendRepository {
  /** Runs `fn` in one transaction (all or nothing). */
  transaction<T>(fn: () => T): T;
  /** The schema version after migrations. */
  schemaVersion(): number;
  close(): void;

  getServiceIdentity(role: string): ServiceIdentityRow | undefined;
  putServiceIdentity(row: ServiceIdentityRow): void;

  /** Records a device; re-provisioning the same key updates its certificate and version. */
  upsertDevice(row: DeviceRow): void;
  getDevice(id: string): DeviceRow | undefined;
  listDevices(): DeviceRow[];
  revokeDevice(id: string, at: number, reason: string): boolean;
  /** True when any device with this hardware identity is revoked. */
  isHardwareRevoked(hardwareId: string): boolean;
  /** Records a provisioning attempt and returns how many happened since `since` (inclusive). */
  countProvisioning(hardwareId: string, at: number, since: number): number;

  putPolicy(name: string, specJson: string, at: number): void;
  getPolicy(name: string): string | undefined;
  listPolicies(): { name: string; spec: string }[];

  putContentKey(row: ContentKeyRow): void;
  getContentKey(kid: string): ContentKeyRow | undefined;
  listContentKeys(): ContentKeyRow[];
  contentKeysByContentId(contentId: string): ContentKeyRow[];
  setContentPolicy(kid: string, policy: string): boolean;

  putRoot(row: RootRow): void;
  getRoot(id: string): RootRow | undefined;
  listRoots(): RootRow[];

  /** Records a nonce; false when it was seen before (a replay across workers). */
  rememberNonce(nonce: string, expiresAt: number, now: number): boolean;

  recordLicense(row: LicenseRow): void;
  getLicense(id: string, deviceId: string): LicenseRow | undefined;
  markLicenseReleased(id: string, deviceId: string, at: number): boolean;
  markLicenseRenewed(id: string, deviceId: string, at: number, expiresAt: number): void;
  countLicenses(): number;

  putAccount(row: AccountRow): void;
  getAccount(id: string): AccountRow | undefined;
  listAccounts(): AccountRow[];
  setAccountKey(id: string, revision: number, publicKey: Buffer, sealedPrivate: Buffer): void;
  addMember(row: MemberRow): void;
  removeMember(accountId: string, deviceId: string): boolean;
  listMembers(accountId: string): MemberRow[];
  accountOfDevice(deviceId: string): AccountRow | undefined;
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
}

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
