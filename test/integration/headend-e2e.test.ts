import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DomainClient } from '../../src/agent/domain-client.js';
import { LicenseExchange } from '../../src/agent/license-exchange.js';
import { isKeywardenError } from '../../src/errors/index.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import { decryptFile } from '../../src/media/decrypt/index.js';
import { packageFile } from '../../src/media/package/packager.js';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { removeDir, startTestHeadend, TestDevice, type TestHeadend } from './headend-helpers.js';

const FIXTURE = path.resolve(import.meta.dirname, '../fixtures/media/demo-h264-aac.mp4');
const kid = (n: number): Buffer =>
  Buffer.from(`${n.toString(16).padStart(2, '0')}`.repeat(16), 'hex');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

let he: TestHeadend;
let work: string;

async function device(): Promise<TestDevice> {
  const d = new TestDevice(he.url, he.root);
  const res = await d.provision();
  expect(res.grant?.deviceId).toBeTruthy();
  return d;
}

function exchange(
  d: TestDevice,
  extra: Partial<ConstructorParameters<typeof LicenseExchange>[0]> = {},
): LicenseExchange {
  return new LicenseExchange({
    credentials: d.credentials(),
    trustedRoot: he.root,
    licenseUrl: `${he.url}/v1/license`,
    ...extra,
  });
}

/** Proves a key works: package the fixture with it, decrypt with the unwrapped key, compare sizes. */
async function provesKey(kidBytes: Buffer, key: Uint8Array, name: string): Promise<void> {
  const enc = path.join(work, `${name}.enc.mp4`);
  const dec = path.join(work, `${name}.dec.mp4`);
  const admin = he.headend.admin;
  void admin;
  await packageFile({
    input: FIXTURE,
    output: enc,
    scheme: 'cenc',
    key: { kid: kidBytes, key },
    cipherFactory: jsCipherFactory,
  });
  const report = await decryptFile(enc, dec, {
    keys: [{ kid: kidBytes, key }],
    verifyKey: true,
    cipherFactory: jsCipherFactory,
  });
  expect(report.encryptedSamples).toBeGreaterThan(0);
}

beforeAll(async () => {
  he = await startTestHeadend();
  work = mkdtempSync(path.join(os.tmpdir(), 'kw-e2e-'));
  const a = he.headend.admin;
  await a.setPolicy('streaming', { 'license-duration': '24h', 'can-persist': 'false' });
  await a.setPolicy('persistent', {
    'license-duration': '30d',
    'can-persist': 'true',
    'renewal-delay': '7d',
  });
  await a.setPolicy('rental', {
    'rental-duration': '48h',
    'playback-duration': '24h',
    'can-persist': 'true',
    'can-renew': 'false',
  });
  await a.setPolicy('sub-root', { 'license-duration': '30d', 'can-renew': 'true' });
  await a.setPolicy('leaf', {
    chain: 'leaf',
    roots: 'sub-basic,sub-premium',
    'license-duration': '0',
  });
  await a.setPolicy('household', { 'domain-bound': 'true', 'can-persist': 'true' });
  await a.setPolicy('billing', {
    'service-error': 'account suspended',
    'service-custom-data': 'you need to pay your bill',
  });
  await a.addRoot('sub-basic', 'sub-root');
  await a.addRoot('sub-premium', 'sub-root');
  for (const [n, policy] of [
    [1, 'streaming'],
    [2, 'persistent'],
    [3, 'rental'],
    [4, 'leaf'],
    [5, 'household'],
    [6, 'billing'],
  ] as const)
    await a.addContentKey({
      kid: kid(n),
      key: Buffer.alloc(16, n * 17),
      policy,
      contentId: `title-${n}`,
    });
  await a.createDomain('acme-42', { maxDevices: 2 });
});

afterAll(async () => {
  await he.stop();
  removeDir(he.dir);
  removeDir(work);
});

describe('head-end end to end', () => {
  it('serves its root and health', async () => {
    const root = new Uint8Array(await (await fetch(`${he.url}/v1/pki/root`)).arrayBuffer());
    expect(Buffer.from(root).equals(he.root)).toBe(true);
    expect(await (await fetch(`${he.url}/v1/health`)).json()).toMatchObject({ status: 'ok' });
  });

  it('issues a streaming license whose key decrypts content', async () => {
    const d = await device();
    const got = await exchange(d).acquire({ keyIds: [kid(1)] });
    expect(got.license.type).toBe(keywarden.v1.License.LicenseType.STREAMING);
    expect(got.license.deviceId).toBe(d.deviceId);
    const key = got.keys.get(hex(kid(1)));
    expect(key && hex(key)).toBe(hex(Buffer.alloc(16, 17)));
    await provesKey(kid(1), key!, 'streaming');
  });

  it('issues persistent and rental licenses with their policies, renews and releases', async () => {
    const d = await device();
    const ex = exchange(d);
    const persistent = await ex.acquire({ contentId: 'title-2' });
    expect(persistent.license.type).toBe(keywarden.v1.License.LicenseType.OFFLINE);
    expect(Number(persistent.license.policy?.renewalDelayS)).toBe(7 * 86400);
    const renewed = await ex.renew(persistent.license.id);
    expect(renewed.license.id).toBe(persistent.license.id);
    expect(hex(renewed.keys.get(hex(kid(2)))!)).toBe(hex(Buffer.alloc(16, 34)));
    await ex.release(persistent.license.id);
    const rental = await ex.acquire({ keyIds: [kid(3)] });
    expect(Number(rental.license.policy?.rentalDurationS)).toBe(48 * 3600);
    expect(Number(rental.license.policy?.playbackDurationS)).toBe(24 * 3600);
    await expect(ex.renew(rental.license.id)).rejects.toMatchObject({ code: 'SERVICE_SPECIFIC' });
  });

  it('chains leaf licenses to root licenses (any one root suffices)', async () => {
    const d = await device();
    const root = await exchange(d).acquire({ contentId: 'sub-premium' });
    expect(root.license.policy?.chain?.isRoot).toBe(true);
    expect(root.rootKey?.length).toBe(32);
    const rootKeys = new Map([['sub-premium', root.rootKey!]]);
    const leaf = await exchange(d, { rootKeys }).acquire({ keyIds: [kid(4)] });
    expect(leaf.license.policy?.chain?.rootLicenseIds).toEqual(['sub-basic', 'sub-premium']);
    await provesKey(kid(4), leaf.keys.get(hex(kid(4)))!, 'leaf');
    await expect(exchange(d).acquire({ keyIds: [kid(4)] })).rejects.toMatchObject({
      code: 'KEY_UNWRAP_FAILED',
    });
  });

  it('binds licenses to a domain after a domain-required answer, and enforces the maximum', async () => {
    const d = await device();
    const err = await exchange(d)
      .acquire({ keyIds: [kid(5)], customData: '{"account":"acme-42"}' })
      .catch((e: unknown) => e);
    expect(isKeywardenError(err, 'NOT_A_DOMAIN_MEMBER')).toBe(true);
    const details = (err as { details: Record<string, unknown> }).details;
    expect(details).toMatchObject({ accountId: 'acme-42', serviceId: 'keywarden-reference' });
    const domains = new DomainClient({
      credentials: d.credentials(),
      trustedRoot: he.root,
      domainUrl: `${he.url}/v1/domain/join`,
    });
    const m = await domains.join({ accountId: 'acme-42', friendlyName: 'living room' });
    const got = await exchange(d, { domainKeys: new Map([[m.domainId, m.privateKey]]) }).acquire({
      keyIds: [kid(5)],
    });
    expect(got.license.policy?.domain?.domainId).toBe(m.domainId);
    await provesKey(kid(5), got.keys.get(hex(kid(5)))!, 'domain');
    const second = await device();
    await new DomainClient({
      credentials: second.credentials(),
      trustedRoot: he.root,
      domainUrl: `${he.url}/v1/domain/join`,
    }).join({ accountId: 'acme-42' });
    const third = await device();
    await expect(
      new DomainClient({
        credentials: third.credentials(),
        trustedRoot: he.root,
        domainUrl: `${he.url}/v1/domain/join`,
      }).join({ accountId: 'acme-42' }),
    ).rejects.toMatchObject({ code: 'DOMAIN_FULL', number: 6040 });
    await expect(
      new DomainClient({
        credentials: third.credentials(),
        trustedRoot: he.root,
        domainUrl: `${he.url}/v1/domain/join`,
      }).join({ accountId: 'nobody' }),
    ).rejects.toMatchObject({ code: 'UNKNOWN_DOMAIN_ACCOUNT', number: 6042 });
  });

  it('answers 6007 with custom data for a service error', async () => {
    const d = await device();
    await expect(exchange(d).acquire({ keyIds: [kid(6)] })).rejects.toMatchObject({
      code: 'SERVICE_SPECIFIC',
      number: 6007,
      details: expect.objectContaining({ customData: 'you need to pay your bill' }),
    });
  });
});
