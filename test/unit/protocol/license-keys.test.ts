import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { unwrapLicense } from '../../../src/agent/license-keys.js';
import { aeadWrap } from '../../../src/crypto/aead.js';
import { generateP256KeyPair } from '../../../src/crypto/ecdsa.js';
import { agreementOf, eciesWrap } from '../../../src/crypto/ecies.js';
import {
  contentKeyContext,
  keywarden,
  leafKeyContext,
  rootKeyContext,
} from '../../../src/protocol/index.js';

const v1 = keywarden.v1;
const W = v1.KeyWrapping;
const coded = (code: string): Error => expect.objectContaining({ code }) as Error;

describe('license key wrapping contract (head-end wraps, device unwraps)', () => {
  const device = generateP256KeyPair();
  const domain = generateP256KeyPair();
  const kid = randomBytes(16);
  const key = randomBytes(16);
  const keys = { deviceId: 'dev-1', device: agreementOf(device.privateKey) };

  it('unwraps a device-bound key and refuses another device', () => {
    const lic = v1.License.create({
      id: 'L1',
      deviceId: 'dev-1',
      keys: [
        {
          kid,
          wrapping: W.KEY_WRAPPING_DEVICE,
          wrappedKey: eciesWrap(device.publicKey, key, contentKeyContext('L1', kid)),
        },
      ],
    });
    expect(Buffer.from(unwrapLicense(lic, keys).keys.get(kid.toString('hex'))!).equals(key)).toBe(
      true,
    );
    expect(() => unwrapLicense(lic, { ...keys, deviceId: 'dev-2' })).toThrow(
      coded('LICENSE_WRONG_DEVICE'),
    );
    const other = { deviceId: 'dev-1', device: agreementOf(generateP256KeyPair().privateKey) };
    expect(() => unwrapLicense(lic, other)).toThrow(coded('KEY_UNWRAP_FAILED'));
    const moved = v1.License.create({ ...lic, id: 'L2' });
    expect(() => unwrapLicense(moved, keys)).toThrow(coded('KEY_UNWRAP_FAILED'));
  });

  it('unwraps a domain-bound key with the domain key only', () => {
    const lic = v1.License.create({
      id: 'L1',
      policy: { domain: { domainId: 'd1', revision: 1 } },
      keys: [
        {
          kid,
          wrapping: W.KEY_WRAPPING_DOMAIN,
          wrappedKey: eciesWrap(domain.publicKey, key, contentKeyContext('L1', kid)),
        },
      ],
    });
    expect(() => unwrapLicense(lic, keys)).toThrow(coded('NOT_A_DOMAIN_MEMBER'));
    const out = unwrapLicense(lic, { ...keys, domainKeys: new Map([['d1', domain.privateKey]]) });
    expect(Buffer.from(out.keys.get(kid.toString('hex'))!).equals(key)).toBe(true);
  });

  it('unwraps a root key, then leaf keys through any one valid root', () => {
    const rootKey = randomBytes(32);
    const root = v1.License.create({
      id: 'root-gold',
      policy: { chain: { isRoot: true } },
      rootKey: {
        wrapping: W.KEY_WRAPPING_DEVICE,
        wrappedKey: eciesWrap(device.publicKey, rootKey, rootKeyContext('root-gold')),
      },
    });
    const got = unwrapLicense(root, keys).rootKey!;
    expect(Buffer.from(got).equals(rootKey)).toBe(true);
    const leaf = v1.License.create({
      id: 'leaf-1',
      policy: { chain: { rootLicenseIds: ['root-silver', 'root-gold'] } },
      keys: [
        {
          kid,
          wrapping: W.KEY_WRAPPING_ROOT,
          rootWraps: [
            {
              rootLicenseId: 'root-silver',
              wrappedKey: aeadWrap(randomBytes(32), key, leafKeyContext('root-silver', kid)),
            },
            {
              rootLicenseId: 'root-gold',
              wrappedKey: aeadWrap(rootKey, key, leafKeyContext('root-gold', kid)),
            },
          ],
        },
      ],
    });
    expect(() => unwrapLicense(leaf, keys)).toThrow(coded('KEY_UNWRAP_FAILED'));
    const out = unwrapLicense(leaf, { ...keys, rootKeys: new Map([['root-gold', got]]) });
    expect(Buffer.from(out.keys.get(kid.toString('hex'))!).equals(key)).toBe(true);
  });
});
