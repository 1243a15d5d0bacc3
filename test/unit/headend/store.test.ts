import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startCheckpointer } from '../../../src/headend/store/checkpointer.js';
import { DATABASE_FILE, openSqliteStore } from '../../../src/headend/store/open-store.js';
import type { SqliteStoreOptions } from '../../../src/headend/store/sqlite-store.js';
import type {
  AccountRow,
  DeviceRow,
  HeadendRepository,
  LicenseRow,
} from '../../../src/headend/store/repository.js';

const opened: HeadendRepository[] = [];
const dirs: string[] = [];

async function freshStore(
  dir = mkdtempSync(path.join(os.tmpdir(), 'kw-repo-')),
  opts: SqliteStoreOptions = {},
) {
  if (!dirs.includes(dir)) dirs.push(dir);
  const store = await openSqliteStore(dir, opts);
  opened.push(store);
  return { store, dir };
}

/** Rows of a table, read over a separate connection (what the repository does not expose). */
function count(dir: string, sql: string): number {
  const db = new Database(path.join(dir, DATABASE_FILE), { readonly: true });
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const device = (id: string, hardwareId: string, over: Partial<DeviceRow> = {}): DeviceRow => ({
  id,
  hardwareId,
  publicKey: Buffer.from(`pk-${id}`),
  certDer: Buffer.from(`cert-${id}`),
  serial: '',
  agentVersion: '1.0.0',
  securityLevel: 1,
  platform: 'test',
  model: 'box',
  status: 'active',
  provisionedAt: 100,
  revokedAt: null,
  revokeReason: null,
  ...over,
});

const account = (id: string, maxDevices: number, over: Partial<AccountRow> = {}): AccountRow => ({
  id,
  domainId: `dom-${id}`,
  serviceId: 'svc',
  maxDevices,
  revision: 1,
  domainPublicKey: Buffer.from('pub-1'),
  sealedDomainKey: Buffer.from('sealed-1'),
  serviceHold: null,
  createdAt: 1,
  ...over,
});

const license = (id: string, deviceId: string, renewals = 0, at = 1000): LicenseRow => ({
  id,
  deviceId,
  contentId: 'c',
  kids: '',
  policy: 'default',
  kind: 'simple',
  issuedAt: at,
  expiresAt: at + 1000,
  status: 'active',
  renewals,
});

describe('SQLite repository: atomic methods', () => {
  it('admits provisioning attempts in a window it prunes, and never records revoked hardware', async () => {
    const { store, dir } = await freshStore();
    const admit = (hardwareId: string, at: number, windowStart: number, deviceId = 'd1') =>
      store.admitProvisioning({ hardwareId, deviceId, at, windowStart });
    expect(await admit('h1', 1000, 0)).toEqual({
      status: 'admitted',
      attempts: 1,
      known: undefined,
    });
    expect(await admit('h2', 1500, 0)).toMatchObject({ attempts: 1 });
    expect(await admit('h1', 2000, 0)).toMatchObject({ attempts: 2 });
    // A later window forgets (deletes) every attempt before it, of every hardware.
    expect(await admit('h1', 10_000, 5000)).toMatchObject({ attempts: 1 });
    expect(count(dir, 'SELECT COUNT(*) AS n FROM provisioning_events')).toBe(1);

    expect(await store.recordProvisioning(device('d1', 'h1'))).toBe('recorded');
    expect(await admit('h1', 11_000, 5000)).toMatchObject({ known: { id: 'd1' } });
    const first = await store.revokeDevice('d1', 500, 'cloned');
    expect(first).toMatchObject({ changed: true, device: { status: 'revoked', revokedAt: 500 } });
    const again = await store.revokeDevice('d1', 900, 'again');
    expect(again).toMatchObject({
      changed: false,
      device: { revokedAt: 500, revokeReason: 'cloned' },
    });
    expect(await store.revokeDevice('nobody', 1, 'x')).toBeUndefined();

    const before = count(dir, 'SELECT COUNT(*) AS n FROM provisioning_events');
    expect(await admit('h1', 12_000, 5000)).toEqual({ status: 'hardware-revoked' });
    expect(count(dir, 'SELECT COUNT(*) AS n FROM provisioning_events')).toBe(before);
    // Revoked meanwhile: the last check inside the recording transaction refuses.
    expect(await store.recordProvisioning(device('d2', 'h1'))).toBe('revoked');
    expect(await store.recordProvisioning(device('d1', 'h9'))).toBe('revoked');
    expect(await store.getDevice('d2')).toBeUndefined();

    // A new certificate for a known key keeps its first provisioning time.
    await store.recordProvisioning(device('d3', 'h3', { provisionedAt: 100 }));
    await store.recordProvisioning(
      device('d3', 'h3', {
        provisionedAt: 900,
        certDer: Buffer.from('new'),
        agentVersion: '2.0.0',
      }),
    );
    expect(await store.getDevice('d3')).toMatchObject({
      provisionedAt: 100,
      agentVersion: '2.0.0',
      certDer: Buffer.from('new'),
      status: 'active',
    });
  });

  it('releases a license once, and never renews a released one', async () => {
    const { store } = await freshStore();
    expect(await store.recordLicense(license('L1', 'dev'))).toBe(true);
    expect(await store.releaseLicense('L1', 'dev', 2000)).toBe('released');
    expect(await store.releaseLicense('L1', 'dev', 3000)).toBe('already-released');
    expect(await store.getLicense('L1', 'dev')).toMatchObject({
      status: 'released',
      releasedAt: 2000,
    });
    expect(await store.releaseLicense('L1', 'other', 3000)).toBe('unknown');
    expect(await store.releaseLicense('L2', 'dev', 3000)).toBe('unknown');
    // A renewal that lost the race with the release writes nothing.
    expect(await store.recordLicense(license('L1', 'dev', 1, 4000))).toBe(false);
    expect(await store.getLicense('L1', 'dev')).toMatchObject({ status: 'released', renewals: 0 });
    // A new issue under the same id (a root license asked for again) re-activates it.
    expect(await store.recordLicense(license('L1', 'dev', 0, 5000))).toBe(true);
    expect(await store.getLicense('L1', 'dev')).toMatchObject({
      status: 'active',
      renewals: 1,
      issuedAt: 5000,
      releasedAt: null,
    });
    expect(await store.recordLicense(license('L1', 'dev', 2, 6000))).toBe(true);
    expect(await store.getLicense('L1', 'dev')).toMatchObject({ renewals: 2, issuedAt: 6000 });
    expect(await store.countLicenses()).toBe(1);
  });

  it('fills a domain up to its limit and rotates its key with compare-and-set', async () => {
    const { store } = await freshStore();
    expect(await store.putAccount(account('acme', 2))).toMatchObject({ revision: 1 });
    // Changing the limits never replaces the domain id, the revision or the key.
    const updated = await store.putAccount(
      account('acme', 3, { domainId: 'other', revision: 9, sealedDomainKey: Buffer.from('x') }),
    );
    expect(updated).toMatchObject({ domainId: 'dom-acme', revision: 1, maxDevices: 3 });
    expect(updated.sealedDomainKey).toEqual(Buffer.from('sealed-1'));
    await store.putAccount(account('acme', 2));

    const join = (deviceId: string, domainId = '', accountId = 'acme') =>
      store.joinDomain({ accountId, domainId, deviceId, friendlyName: `n-${deviceId}`, at: 1 });
    expect(await join('d1')).toMatchObject({ status: 'joined', rejoined: false });
    expect(await join('d2', 'dom-acme')).toMatchObject({ status: 'joined' });
    expect(await join('d3')).toMatchObject({ status: 'full', account: { id: 'acme' } });
    expect(await join('d1')).toMatchObject({ status: 'joined', rejoined: true });
    expect(await join('d4', 'dom-wrong')).toEqual({ status: 'unknown-account' });
    expect(await join('d4', '', 'nobody')).toEqual({ status: 'unknown-account' });
    expect((await store.accountOfDevice('d2'))?.id).toBe('acme');

    const rotate = (expectedRevision: number, removeDeviceId?: string, accountId = 'acme') =>
      store.rotateDomainKey({
        accountId,
        expectedRevision,
        publicKey: Buffer.from(`pub-${expectedRevision + 1}`),
        sealedKey: Buffer.from(`sealed-${expectedRevision + 1}`),
        ...(removeDeviceId && { removeDeviceId }),
      });
    expect(await rotate(1, 'd2')).toBe('rotated');
    // Lost race: the member removal is rolled back with the failed rotation.
    expect(await rotate(1, 'd1')).toBe('stale-revision');
    expect(await rotate(2, 'zz')).toBe('not-member');
    expect(await rotate(1, undefined, 'nobody')).toBe('unknown-account');
    const domain = await store.getDomain('acme');
    expect(domain?.account).toMatchObject({ revision: 2 });
    expect(domain?.account.sealedDomainKey).toEqual(Buffer.from('sealed-2'));
    expect(domain?.members.map((m) => [m.deviceId, m.friendlyName])).toEqual([['d1', 'n-d1']]);
    expect(await store.accountOfDevice('d2')).toBeUndefined();
  });

  it('keeps content keys, roots and service identities write-once; stores flags; prunes nonces', async () => {
    const { store } = await freshStore();
    const key = (kid: string, sealed: string) => ({
      kid,
      sealedKey: Buffer.from(sealed),
      contentId: 'c',
      policy: null,
      trackType: 0,
      createdAt: 1,
    });
    expect(await store.insertContentKey(key('aa', 'first'))).toBe(true);
    expect(await store.insertContentKey(key('aa', 'second'))).toBe(false);
    expect((await store.getContentKey('aa'))?.sealedKey).toEqual(Buffer.from('first'));
    await store.insertContentKey(key('bb', 'b'));
    expect((await store.getContentKeys(['bb', 'zz', 'aa'])).map((r) => r.kid)).toEqual([
      'bb',
      'aa',
    ]);
    expect(await store.getContentKeys([])).toEqual([]);

    const root = { id: 'r', policy: null, sealedSecret: Buffer.from('s1'), createdAt: 1 };
    await store.putRoot(root);
    const again = await store.putRoot({
      ...root,
      policy: 'p',
      sealedSecret: Buffer.from('s2'),
      createdAt: 2,
    });
    expect(again).toMatchObject({ policy: 'p', createdAt: 1 });
    expect(again.sealedSecret).toEqual(Buffer.from('s1'));

    const id = {
      role: 'root',
      certDer: Buffer.from('c1'),
      sealedKey: Buffer.from('k1'),
      createdAt: 1,
    };
    await store.insertServiceIdentity(id);
    const second = await store.insertServiceIdentity({ ...id, certDer: Buffer.from('c2') });
    expect(second.certDer).toEqual(Buffer.from('c1'));

    await store.setFlag('provision-limit', '3', 1);
    await store.setFlag('provision-limit', '4', 2);
    await store.setFlag('min-agent-version', '1.0.0', 2);
    expect(await store.getFlags()).toEqual({
      'provision-limit': '4',
      'min-agent-version': '1.0.0',
    });
    await store.setFlag('provision-limit', null, 3);
    expect(await store.getFlags()).toEqual({ 'min-agent-version': '1.0.0' });

    expect(await store.rememberNonce('a', 10, 0)).toBe(true);
    expect(await store.rememberNonce('a', 10, 0)).toBe(false);
    // Later, expired nonces are dropped (they are outside every replay window anyway).
    expect(await store.rememberNonce('b', 5000, 2000)).toBe(true);
    expect(await store.rememberNonce('a', 6000, 2000)).toBe(true);
  });

  it('stays consistent with four processes writing at once', async () => {
    const { store, dir } = await freshStore();
    const PROCESSES = 4;
    const ROUNDS = 25;
    await store.putAccount(account('race', 30));
    await store.putAccount(account('rot', 1));
    await store.recordLicense(license('lic', 'dev'));
    const child = path.join(import.meta.dirname, 'store-race-child.ts');
    const kids = Array.from({ length: PROCESSES }, () =>
      fork(child, [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    type Report = {
      joins: string[];
      attempts: number[];
      nonces: number;
      release: string;
      retries: number;
    };
    const ready = kids.map((k) => new Promise((resolve) => k.once('message', resolve)));
    const reports = kids.map(
      (k) =>
        new Promise<Report>((resolve, reject) => {
          k.on('message', (m) => {
            if (m !== 'ready') resolve(m as Report);
          });
          k.once('exit', (code) =>
            code === 0 ? undefined : reject(new Error(`child exit ${code}`)),
          );
        }),
    );
    await Promise.all(ready);
    kids.forEach((k, index) => k.send({ dir, index, rounds: ROUNDS }));
    const all = await Promise.all(reports);

    const joins = all.flatMap((r) => r.joins);
    expect(joins.filter((j) => j === 'joined')).toHaveLength(30);
    expect(joins.filter((j) => j === 'full')).toHaveLength(PROCESSES * ROUNDS - 30);
    expect((await store.getDomain('race'))?.members).toHaveLength(30);
    // Every admission saw every earlier one: the counts are exactly 1..N, no duplicates.
    const attempts = all.flatMap((r) => r.attempts).sort((a, b) => a - b);
    expect(attempts).toEqual(Array.from({ length: PROCESSES * ROUNDS }, (_, i) => i + 1));
    expect(all.reduce((n, r) => n + r.nonces, 0)).toBe(ROUNDS);
    expect(all.map((r) => r.release).sort()).toEqual([
      'already-released',
      'already-released',
      'already-released',
      'released',
    ]);
    // No rotation was lost: one revision per rotation, whatever the retries.
    const rotations = PROCESSES * Math.ceil(ROUNDS / 5);
    expect((await store.getAccount('rot'))?.revision).toBe(1 + rotations);
  });
});

describe('SQLite repository: waiting and housekeeping off the event loop', () => {
  /** Turns of the event loop during `ms`: a blocked loop counts none. */
  async function turnsDuring(ms: number): Promise<number> {
    let turns = 0;
    const tick = setInterval(() => turns++, 1);
    await new Promise((r) => setTimeout(r, ms));
    clearInterval(tick);
    return turns;
  }

  it("waits for another process's write lock without blocking, then decides as before", async () => {
    const { store, dir } = await freshStore();
    const other = new Database(path.join(dir, DATABASE_FILE));
    try {
      other.exec('BEGIN IMMEDIATE');
      let settled = false;
      const pending = store.rememberNonce('n1', 1e15, 0).finally(() => (settled = true));
      // Readers are not held up by the writer (WAL), and the loop keeps turning.
      expect(await store.getFlags()).toEqual({});
      expect(await turnsDuring(60)).toBeGreaterThan(10);
      expect(settled).toBe(false);
      other.exec('COMMIT');
      expect(await pending).toBe(true);
      expect(await store.rememberNonce('n1', 1e15, 0)).toBe(false);
    } finally {
      other.close();
    }
  });

  it('fails with STORE_FAILED once the busy timeout has passed', async () => {
    const { store, dir } = await freshStore(undefined, { busyTimeoutMs: 80 });
    const other = new Database(path.join(dir, DATABASE_FILE));
    try {
      other.exec('BEGIN IMMEDIATE');
      const started = performance.now();
      await expect(store.recordLicense(license('l1', 'd1'))).rejects.toMatchObject({
        code: 'STORE_FAILED',
      });
      expect(performance.now() - started).toBeGreaterThanOrEqual(70);
      other.exec('ROLLBACK');
      expect(await store.recordLicense(license('l1', 'd1'))).toBe(true);
    } finally {
      other.close();
    }
  });

  it('prunes expired nonces in bounded batches until none is left', async () => {
    const { store, dir } = await freshStore();
    for (let i = 0; i < 600; i++) expect(await store.rememberNonce(`old-${i}`, 10, 0)).toBe(true);
    const expired = () => count(dir, 'SELECT COUNT(*) AS n FROM nonces WHERE expires_at < 100');
    expect(expired()).toBe(600);
    await store.rememberNonce('a', 1e6, 100);
    expect(expired()).toBe(600 - 256);
    // A full batch lets the next call prune again at once.
    await store.rememberNonce('b', 1e6, 100);
    await store.rememberNonce('c', 1e6, 100);
    expect(expired()).toBe(0);
    // An expired nonce is outside every replay window: remembering it again is accepted.
    expect(await store.rememberNonce('old-1', 1e6, 100)).toBe(true);
    expect(await store.rememberNonce('a', 1e6, 100)).toBe(false);
  });

  it('copies the WAL back from a background thread, and stops it on close', async () => {
    const { store, dir } = await freshStore(undefined, { backgroundCheckpoints: true });
    const dbFile = path.join(dir, DATABASE_FILE);
    const before = statSync(dbFile).size;
    // A few hundred WAL frames: below SQLite's own threshold (1000 pages), so only the
    // thread copies them into the database file.
    for (let i = 0; i < 100; i++) await store.recordLicense(license(`lic-${i}`, `dev-${i}`));
    for (let i = 0; i < 50 && statSync(dbFile).size === before; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(statSync(dbFile).size).toBeGreaterThan(before);
    expect(count(dir, 'SELECT COUNT(*) AS n FROM licenses')).toBe(100);
    await store.close();
    await store.close();
    await expect(store.countLicenses()).rejects.toMatchObject({ code: 'STORE_FAILED' });
  });

  it('reports a checkpointer that cannot run', async () => {
    const failure = await new Promise<string>((resolve) => {
      startCheckpointer(path.join(os.tmpdir(), 'kw-no-such-dir', 'x.db'), resolve);
    });
    expect(failure).toMatch(/./);
  });
});
