/**
 * The real device stack (SoftwareKeyVault + Individualizer + LicenseExchange) against the
 * real head-end over HTTP on loopback: provisioning on first need, a license whose key
 * decrypts packaged content, and the device-side refusals (version floor, hardware change,
 * revocation, a vault copied to other hardware).
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Individualizer } from '../../src/agent/individualization.js';
import { LicenseExchange } from '../../src/agent/license-exchange.js';
import { httpRefusalCode } from '../../src/agent/wire-errors.js';
import type { DeviceCredentials } from '../../src/agent/device-credentials.js';
import {
  DEFAULT_IDENTITY_SOURCES,
  readHardwareIdentity,
  type HardwareIdentity,
  type IdentityFs,
} from '../../src/crypto/hardware-identity.js';
import { SoftwareKeyVault } from '../../src/crypto/key-vault.js';
import type { KeywardenError } from '../../src/errors/index.js';
import { decryptFile } from '../../src/media/decrypt/index.js';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { packageFile } from '../../src/media/package/packager.js';
import { compareSamples, digestSamples } from '../../src/media/sample-digest.js';
import { removeDir, startTestHeadend, type TestHeadend } from './headend-helpers.js';

const FIXTURE = path.resolve(import.meta.dirname, '../fixtures/media/demo-h264-aac.mp4');
const KID = Buffer.from('d0d0d0d0a1a1b2b2c3c3e4e4f5f5a6a6', 'hex');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A board's identity files, as the real sources read them. */
interface Board {
  readonly machineId: string;
  readonly boardSerial: string;
  readonly cpuSerial: string;
}

function boardFs(b: Board): IdentityFs {
  const files: Record<string, string> = {
    '/etc/machine-id': `${b.machineId}\n`,
    '/proc/device-tree/serial-number': `${b.boardSerial}\0`,
    '/proc/cpuinfo': `processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: ${b.cpuSerial}\n`,
  };
  return {
    readText: (p) => {
      const text = files[p];
      return text === undefined ? Promise.reject(new Error(`ENOENT ${p}`)) : Promise.resolve(text);
    },
  };
}

const identityOf = (b: Board): Promise<HardwareIdentity> =>
  readHardwareIdentity(DEFAULT_IDENTITY_SOURCES, boardFs(b));

let boards = 0;
function newBoard(): Board {
  const n = (++boards).toString(16).padStart(4, '0');
  return { machineId: `${n}`.repeat(8), boardSerial: `bs${n}`, cpuSerial: `00000000c0ffee${n}` };
}

let he: TestHeadend;
let work: string;
let contentKey: Buffer;
/** POSTs the server saw, by path. */
const posts = new Map<string, number>();

/** The device side of one box: its vault file, identity and individualizer (with events). */
class Box {
  readonly events: string[] = [];
  readonly hardwareChanges: KeywardenError[] = [];
  readonly vault: SoftwareKeyVault;
  readonly individualizer: Individualizer;

  constructor(
    readonly vaultFile: string,
    readonly identity: HardwareIdentity,
    agentVersion = '1.0.0',
  ) {
    this.vault = new SoftwareKeyVault({ file: vaultFile, identity });
    this.individualizer = new Individualizer({
      provisioningUrl: `${he.url}/v1/provision`,
      vault: this.vault,
      identity,
      trustedRoot: he.root,
      agentVersion,
      attestation: { platform: 'linux-arm64', model: 'test-box' },
      retryDelayMs: () => 10,
    });
    this.individualizer.on('individualizing', (e) =>
      this.events.push(`individualizing ${e.reason}`),
    );
    this.individualizer.on('individualized', (e) => this.events.push(`individualized ${e.reason}`));
    this.individualizer.on('hardware-changed', (e) => this.hardwareChanges.push(e));
  }

  static async create(board: Board, agentVersion?: string): Promise<Box> {
    const file = path.join(mkdtempSync(path.join(work, 'box-')), 'device-key.json');
    return new Box(file, await identityOf(board), agentVersion);
  }

  exchange(credentials: DeviceCredentials): LicenseExchange {
    return new LicenseExchange({
      credentials,
      trustedRoot: he.root,
      licenseUrl: `${he.url}/v1/license`,
    });
  }
}

/** Packages the fixture with `key`, decrypts it with the key, and compares every sample. */
async function provesKey(key: Uint8Array, name: string): Promise<void> {
  const enc = path.join(work, `${name}.enc.mp4`);
  const dec = path.join(work, `${name}.dec.mp4`);
  await packageFile({
    input: FIXTURE,
    output: enc,
    scheme: 'cenc',
    key: { kid: KID, key },
    cipherFactory: jsCipherFactory,
  });
  const report = await decryptFile(enc, dec, {
    keys: [{ kid: KID, key }],
    verifyKey: true,
    cipherFactory: jsCipherFactory,
  });
  expect(report.encryptedSamples).toBeGreaterThan(0);
  expect(compareSamples(await digestSamples(dec), await digestSamples(FIXTURE))).toEqual([]);
  expect(compareSamples(await digestSamples(enc), await digestSamples(FIXTURE))).not.toEqual([]);
}

function countPosts(): void {
  he.server.server.on('request', (req) => {
    if (req.method !== 'POST') return;
    const p = req.url ?? '';
    posts.set(p, (posts.get(p) ?? 0) + 1);
  });
}

beforeAll(async () => {
  he = await startTestHeadend();
  countPosts();
  work = mkdtempSync(path.join(os.tmpdir(), 'kw-device-'));
  await he.headend.admin.setPolicy('streaming', {
    'license-duration': '24h',
    'can-persist': 'false',
  });
  const added = await he.headend.admin.addContentKey({
    kid: KID,
    policy: 'streaming',
    contentId: 'device-title',
  });
  contentKey = Buffer.from(added.key ?? '', 'hex');
});

afterAll(async () => {
  await he.stop();
  removeDir(he.dir);
  removeDir(work);
});

describe('real device stack against the head-end', () => {
  it('individualizes on first need, then licenses a key that decrypts content', async () => {
    expect(contentKey.length).toBe(16);
    const box = await Box.create(newBoard());
    const creds = await box.individualizer.ensureIndividualized();
    expect(box.events).toEqual([
      'individualizing PROVISIONING_REASON_FIRST',
      'individualized PROVISIONING_REASON_FIRST',
    ]);
    const stored = box.vault.loadCertificate();
    expect(stored?.deviceId).toBe(creds.deviceId);
    expect(stored?.agentVersion).toBe('1.0.0');
    const row = (await he.headend.admin.listDevices()).find((d) => d.id === creds.deviceId);
    expect(row).toMatchObject({ status: 'active', agentVersion: '1.0.0', model: 'test-box' });

    const got = await box.exchange(creds).acquire({ keyIds: [KID] });
    expect(got.license.deviceId).toBe(creds.deviceId);
    const key = got.keys.get(hex(KID));
    expect(key && hex(key)).toBe(hex(contentKey));
    await provesKey(key!, 'device');

    // A restart: the vault opens from disk and nothing is provisioned again.
    const again = new Box(box.vaultFile, box.identity);
    const before = posts.get('/v1/provision');
    expect((await again.individualizer.ensureIndividualized()).deviceId).toBe(creds.deviceId);
    expect(again.events).toEqual([]);
    expect(posts.get('/v1/provision')).toBe(before);
  });

  it('survives a minority of identity sources changing without re-individualizing', async () => {
    const board = newBoard();
    const box = await Box.create(board);
    const first = await box.individualizer.ensureIndividualized();
    const moved = new Box(
      box.vaultFile,
      await identityOf({ ...board, machineId: 'ab'.repeat(16) }),
    );
    const second = await moved.individualizer.ensureIndividualized();
    expect(second.deviceId).toBe(first.deviceId);
    expect(moved.hardwareChanges).toEqual([]);
    expect(moved.events).toEqual([]);
  });

  it('re-individualizes with a new key when a majority of the identity changed (6013)', async () => {
    const board = newBoard();
    const box = await Box.create(board);
    const old = await box.individualizer.ensureIndividualized();
    const changed = { ...board, boardSerial: 'swapped', cpuSerial: '00000000deadbeef' };
    const moved = new Box(box.vaultFile, await identityOf(changed));
    const creds = await moved.individualizer.ensureIndividualized();
    expect(moved.hardwareChanges.map((e) => [e.code, e.number])).toEqual([
      ['HARDWARE_CHANGED', 6013],
    ]);
    expect(moved.hardwareChanges[0]?.cause).toMatchObject({ code: 'VAULT_IDENTITY_MISMATCH' });
    expect(moved.events).toEqual([
      'individualizing PROVISIONING_REASON_HARDWARE_CHANGED',
      'individualized PROVISIONING_REASON_HARDWARE_CHANGED',
    ]);
    expect(creds.deviceId).not.toBe(old.deviceId);
    expect(hex(moved.vault.loadCertificate()!.certificate)).not.toBe(
      hex(box.vault.loadCertificate()!.certificate),
    );
    const ids = (await he.headend.admin.listDevices()).map((d) => d.id);
    expect(ids).toEqual(expect.arrayContaining([old.deviceId, creds.deviceId]));
    // The vault now belongs to the new identity: the old one cannot open it.
    await expect(
      new SoftwareKeyVault({ file: box.vaultFile, identity: box.identity }).open(),
    ).rejects.toMatchObject({ code: 'VAULT_IDENTITY_MISMATCH', number: 7310 });
    const got = await moved.exchange(creds).acquire({ keyIds: [KID] });
    expect(hex(got.keys.get(hex(KID))!)).toBe(hex(contentKey));
  });

  it('cannot open a vault file copied to another device', async () => {
    const box = await Box.create(newBoard());
    const creds = await box.individualizer.ensureIndividualized();
    const stolen = path.join(mkdtempSync(path.join(work, 'thief-')), 'device-key.json');
    copyFileSync(box.vaultFile, stolen);
    const thief = new SoftwareKeyVault({ file: stolen, identity: await identityOf(newBoard()) });
    await expect(thief.open()).rejects.toMatchObject({
      code: 'VAULT_IDENTITY_MISMATCH',
      number: 7310,
    });
    await expect(thief.sign(Buffer.from('x'))).rejects.toMatchObject({
      code: 'NOT_INDIVIDUALIZED',
    });
    expect(creds.deviceId).toBeTruthy();
  });

  it('refuses licenses to a revoked device with a coded error', async () => {
    const box = await Box.create(newBoard());
    const creds = await box.individualizer.ensureIndividualized();
    await box.exchange(creds).acquire({ keyIds: [KID] });
    await he.headend.admin.revokeDevice(creds.deviceId, 'cloned');
    const before = posts.get('/v1/license') ?? 0;
    // The head-end signs nothing for a revoked device: 403 + ErrorReply; the device raises
    // the server's code, marked unsigned.
    const err = (await box
      .exchange(creds)
      .acquire({ keyIds: [KID] })
      .catch((e: unknown) => e)) as KeywardenError;
    expect(err).toMatchObject({
      code: 'DEVICE_REVOKED',
      number: 7406,
      details: expect.objectContaining({ status: 403, code: 7406, unsigned: true }),
    });
    expect(httpRefusalCode(err)).toBe('DEVICE_REVOKED');
    expect(posts.get('/v1/license')).toBe(before + 1);
    // A new certificate does not cure a revocation.
    await expect(box.individualizer.handleRefusal(err)).rejects.toBe(err);
    // Re-provisioning the same key is refused too (signed ProvisioningError), without retries.
    const fresh = new Box(box.vaultFile, box.identity, '1.1.0');
    const p = posts.get('/v1/provision') ?? 0;
    await expect(fresh.individualizer.ensureIndividualized()).rejects.toMatchObject({
      code: 'DEVICE_REVOKED',
    });
    expect(posts.get('/v1/provision')).toBe(p + 1);
  });

  it('stops at once with 7407 when the head-end raises the minimum agent version', async () => {
    await he.stop();
    he = await startTestHeadend({ minAgentVersion: '2.0.0', updateUrl: 'https://up/' }, he.dir);
    countPosts();
    const box = await Box.create(newBoard());
    const before = posts.get('/v1/provision') ?? 0;
    const err = await box.individualizer.ensureIndividualized().catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'AGENT_VERSION_TOO_OLD',
      number: 7407,
      details: expect.objectContaining({ minAgentVersion: '2.0.0', updateUrl: 'https://up/' }),
    });
    expect(box.events).toEqual(['individualizing PROVISIONING_REASON_FIRST']);
    expect(posts.get('/v1/provision')).toBe(before + 1);
    // An updated agent gets through.
    const updated = new Box(box.vaultFile, box.identity, '2.0.0');
    const creds = await updated.individualizer.ensureIndividualized();
    const got = await updated.exchange(creds).acquire({ keyIds: [KID] });
    expect(hex(got.keys.get(hex(KID))!)).toBe(hex(contentKey));
  });

  it('re-individualizes when the head-end refuses an expired device certificate', async () => {
    await he.stop();
    // The minimum version of the test before is a server flag kept in the database: lower it.
    he = await startTestHeadend({ deviceCertValidityMs: 1500, minAgentVersion: '1.0.0' }, he.dir);
    countPosts();
    const box = await Box.create(newBoard());
    const old = await box.individualizer.ensureIndividualized();
    await new Promise((r) => setTimeout(r, 1700));
    const err = (await box
      .exchange(old)
      .acquire({ keyIds: [KID] })
      .catch((e: unknown) => e)) as KeywardenError;
    expect(httpRefusalCode(err)).toBe('CERT_EXPIRED');
    const creds = await box.individualizer.handleRefusal(err);
    // An unsigned refusal earns a new certificate for the same key, never a new key.
    expect(creds.publicKey.export({ format: 'der', type: 'spki' })).toEqual(
      old.publicKey.export({ format: 'der', type: 'spki' }),
    );
    expect(box.events.at(-1)).toBe('individualized PROVISIONING_REASON_CERTIFICATE_REFUSED');
    const got = await box.exchange(creds).acquire({ keyIds: [KID] });
    expect(hex(got.keys.get(hex(KID))!)).toBe(hex(contentKey));
  });
});
