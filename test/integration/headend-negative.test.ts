import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spkiOf } from '../../src/crypto/ecdsa.js';
import { eciesUnwrap } from '../../src/crypto/ecies.js';
import { ERRORS } from '../../src/errors/index.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import { contentKeyContext } from '../../src/protocol/key-wrap.js';
import { importSpki, issueCertificate } from '../../src/headend/pki/x509-issuer.js';
import type { ReleaseOutcome } from '../../src/headend/services/license-service.js';
import {
  errorReply,
  licenseResponse,
  post,
  removeDir,
  startTestHeadend,
  TestDevice,
  type TestHeadend,
} from './headend-helpers.js';

const v1 = keywarden.v1;
const KID = Buffer.alloc(16, 0xab);
let now = Date.now();
let he: TestHeadend;
let other: TestHeadend;

async function device(h = he, version = '1.2.0'): Promise<TestDevice> {
  const d = new TestDevice(h.url, h.root, version);
  await d.provision();
  return d;
}

async function license(
  d: TestDevice,
  bytes: Uint8Array,
): Promise<{ status: number; code: number; res?: keywarden.v1.LicenseResponse }> {
  const r = await post(`${he.url}/v1/license`, bytes);
  if (r.status !== 200) return { status: r.status, code: errorReply(r.body).code };
  const res = licenseResponse(r.body, he.root);
  return { status: 200, code: res.error?.code ?? 0, res };
}

beforeAll(async () => {
  he = await startTestHeadend(
    { minAgentVersion: '1.0.0', provisioningLimit: 2, deviceCertValidityMs: 86400_000 },
    undefined,
    () => now,
  );
  other = await startTestHeadend();
  await he.headend.admin.addContentKey({ kid: KID, key: Buffer.alloc(16, 1) });
});

afterAll(async () => {
  for (const h of [he, other]) {
    await h.stop();
    removeDir(h.dir);
  }
});

describe('head-end refusals, each a coded error', () => {
  it('refuses a tampered signature (403, 7302)', async () => {
    const d = await device();
    const env = v1.SignedMessage.decode(d.licenseRequest({ keyIds: [KID] }));
    const at = env.signature.length - 3;
    env.signature[at] = (env.signature[at] ?? 0) ^ 0x40;
    const r = await license(d, v1.SignedMessage.encode(env).finish());
    expect(r).toMatchObject({ status: 403, code: ERRORS.SIGNATURE_INVALID.number });
  });

  it('refuses a chain from another root (403, CERT_UNTRUSTED_ROOT)', async () => {
    const stranger = await device(other);
    const r = await license(stranger, stranger.licenseRequest({ keyIds: [KID] }));
    expect(r).toMatchObject({ status: 403, code: ERRORS.CERT_UNTRUSTED_ROOT.number });
  });

  it('refuses an expired device certificate (403, CERT_EXPIRED)', async () => {
    const d = await device();
    now += 2 * 86400_000;
    try {
      const r = await license(d, d.licenseRequest({ keyIds: [KID] }, d.chain, { nowMs: now }));
      expect(r).toMatchObject({ status: 403, code: ERRORS.CERT_EXPIRED.number });
    } finally {
      now = Date.now();
    }
  });

  it('refuses a replayed nonce (409, NONCE_REPLAYED)', async () => {
    const d = await device();
    const bytes = d.licenseRequest({ keyIds: [KID] });
    expect((await license(d, bytes)).status).toBe(200);
    expect(await license(d, bytes)).toMatchObject({
      status: 409,
      code: ERRORS.NONCE_REPLAYED.number,
    });
  });

  it('refuses a revoked device, for licenses and for re-provisioning', async () => {
    const d = await device();
    await he.headend.admin.revokeDevice(d.deviceId, 'cloned');
    expect(await license(d, d.licenseRequest({ keyIds: [KID] }))).toMatchObject({
      status: 403,
      code: ERRORS.DEVICE_REVOKED.number,
    });
    const again = await d.provision();
    expect(again.error?.code).toBe(ERRORS.DEVICE_REVOKED.number);
  });

  it('refuses an agent below the minimum version, naming the minimum', async () => {
    const d = new TestDevice(he.url, he.root, '0.9.3');
    const res = await d.provision();
    expect(res.error).toMatchObject({
      code: ERRORS.AGENT_VERSION_TOO_OLD.number,
      minAgentVersion: '1.0.0',
    });
  });

  it('rate-limits provisioning per hardware identity', async () => {
    const d = new TestDevice(he.url, he.root, '1.0.0');
    expect((await d.provision()).grant).toBeTruthy();
    expect((await d.provision()).grant).toBeTruthy();
    expect((await d.provision()).error?.code).toBe(ERRORS.HEADEND_RATE_LIMITED.number);
  });

  it('refuses unknown keys (signed LicenseError 7408)', async () => {
    const d = await device();
    const r = await license(d, d.licenseRequest({ keyIds: [Buffer.alloc(16, 0x77)] }));
    expect(r).toMatchObject({ status: 200, code: ERRORS.UNKNOWN_KEY.number });
  });

  it("keeps device A's license useless to device B", async () => {
    const a = await device();
    const b = await device();
    const got = await license(a, a.licenseRequest({ keyIds: [KID] }));
    const lic = got.res?.license;
    expect(lic?.deviceId).toBe(a.deviceId);
    const wrapped = lic?.keys?.[0]?.wrappedKey ?? new Uint8Array(0);
    expect(() => eciesUnwrap(b.privateKey, wrapped, contentKeyContext(lic?.id ?? '', KID))).toThrow(
      /./,
    );
    // B cannot renew A's license, nor pose as A with A's certificate.
    const renew = await license(
      b,
      b.licenseRequest({ type: v1.LicenseRequest.RequestType.RENEWAL, licenseId: lic?.id ?? '' }),
    );
    expect(renew.code).toBe(ERRORS.LICENSE_WRONG_DEVICE.number);
    const posing = await license(b, b.licenseRequest({ keyIds: [KID] }, a.chain));
    expect(posing).toMatchObject({ status: 403, code: ERRORS.SIGNATURE_INVALID.number });
  });

  it('releases a license once: a repeat is confirmed again and reported; no renewal after', async () => {
    const d = await device();
    const seen: [string, ReleaseOutcome][] = [];
    he.headend.licenses.onRelease = (id, _device, outcome) => seen.push([id, outcome]);
    try {
      const issued = (await license(d, d.licenseRequest({ keyIds: [KID] }))).res?.license;
      const id = issued?.id ?? '';
      const release = () =>
        license(
          d,
          d.licenseRequest({ type: v1.LicenseRequest.RequestType.RELEASE, licenseId: id }),
        );
      const first = await release();
      const second = await release();
      for (const r of [first, second])
        expect(r).toMatchObject({ status: 200, code: 0, res: { released: { licenseId: id } } });
      expect(seen).toEqual([
        [id, 'released'],
        [id, 'already-released'],
      ]);
      const row = await he.headend.ctx.store.getLicense(id, d.deviceId);
      expect(row).toMatchObject({ status: 'released' });
      const renew = await license(
        d,
        d.licenseRequest({ type: v1.LicenseRequest.RequestType.RENEWAL, licenseId: id }),
      );
      expect(renew).toMatchObject({ status: 200, code: ERRORS.LICENSE_RELEASED.number });
      // Releasing another device's license is refused, not confirmed.
      const other = await device();
      const foreign = await license(
        other,
        other.licenseRequest({ type: v1.LicenseRequest.RequestType.RELEASE, licenseId: id }),
      );
      expect(foreign.code).toBe(ERRORS.LICENSE_WRONG_DEVICE.number);
    } finally {
      delete he.headend.licenses.onRelease;
    }
  });

  it('refuses a device certificate whose extensions do not fit a device (403, 7301)', async () => {
    const d = await device();
    const ca = he.headend.ctx.pki.identity('provisioning');
    // Our own provisioning CA, but a CA profile for the device key: not a device certificate.
    const asCa = await issueCertificate({
      subject: `CN=${d.deviceId},O=keywarden devices`,
      publicKey: await importSpki(spkiOf(d.key.publicKey)),
      profile: 'intermediate-ca',
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + 3600_000),
      issuerCert: ca.certDer,
      issuerKey: ca.key,
    });
    const r = await license(d, d.licenseRequest({ keyIds: [KID] }, [asCa, ca.certDer]));
    expect(r).toMatchObject({ status: 403, code: ERRORS.CERT_CHAIN_INVALID.number });
    // The certificate it was provisioned with still works.
    expect((await license(d, d.licenseRequest({ keyIds: [KID] }))).status).toBe(200);
  });
});
