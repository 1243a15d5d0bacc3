import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { aeadUnwrap, aeadWrap } from '../../../src/crypto/aead.js';
import { generateP256KeyPair } from '../../../src/crypto/ecdsa.js';
import { agreementOf, ECIES_OVERHEAD, eciesUnwrap, eciesWrap } from '../../../src/crypto/ecies.js';

const coded = (code: string): Error => expect.objectContaining({ code }) as Error;

describe('ECIES P-256 / HKDF-SHA256 / AES-256-GCM', () => {
  const device = generateP256KeyPair();
  const key = randomBytes(16);
  const ctx = 'keywarden/v1 content-key lic-1 00112233445566778899aabbccddeeff';

  it('round-trips, with the documented layout', () => {
    const blob = eciesWrap(device.publicKey, key, ctx);
    expect(blob).toHaveLength(ECIES_OVERHEAD + 16);
    expect(blob[0]).toBe(1);
    expect(blob[1]).toBe(4);
    expect(Buffer.from(eciesUnwrap(device.privateKey, blob, ctx)).equals(key)).toBe(true);
    expect(Buffer.from(eciesUnwrap(agreementOf(device.privateKey), blob, ctx)).equals(key)).toBe(
      true,
    );
  });

  it('uses a fresh ephemeral key every time', () => {
    const a = eciesWrap(device.publicKey, key, ctx);
    const b = eciesWrap(device.publicKey, key, ctx);
    expect(Buffer.from(a).equals(b)).toBe(false);
  });

  it('refuses the wrong private key', () => {
    const blob = eciesWrap(device.publicKey, key, ctx);
    expect(() => eciesUnwrap(generateP256KeyPair().privateKey, blob, ctx)).toThrow(
      coded('KEY_UNWRAP_FAILED'),
    );
  });

  it('refuses any altered byte (point, IV, ciphertext, tag)', () => {
    const blob = eciesWrap(device.publicKey, key, ctx);
    for (const at of [0, 5, 40, 66, 70, 80, blob.length - 1]) {
      const bad = Buffer.from(blob);
      bad[at]! ^= 0x01;
      expect(() => eciesUnwrap(device.privateKey, bad, ctx), `byte ${at}`).toThrow(
        coded('KEY_UNWRAP_FAILED'),
      );
    }
  });

  it('refuses a context (AAD) mismatch', () => {
    const blob = eciesWrap(device.publicKey, key, ctx);
    expect(() => eciesUnwrap(device.privateKey, blob, `${ctx}x`)).toThrow(
      coded('KEY_UNWRAP_FAILED'),
    );
  });

  it('refuses truncated and random blobs', () => {
    const blob = eciesWrap(device.publicKey, key, ctx);
    for (let n = 0; n < blob.length; n += 7) {
      expect(() => eciesUnwrap(device.privateKey, blob.subarray(0, n), ctx)).toThrow(
        coded('KEY_UNWRAP_FAILED'),
      );
    }
    for (let i = 0; i < 50; i++) {
      expect(() => eciesUnwrap(device.privateKey, randomBytes(ECIES_OVERHEAD + i), ctx)).toThrow(
        coded('KEY_UNWRAP_FAILED'),
      );
    }
  });
});

describe('AES-256-GCM wrap', () => {
  const k = randomBytes(32);
  it('round-trips and binds the context', () => {
    const blob = aeadWrap(k, Buffer.from('content key 16by'), 'ctx');
    expect(Buffer.from(aeadUnwrap(k, blob, 'ctx')).toString()).toBe('content key 16by');
    expect(() => aeadUnwrap(k, blob, 'other')).toThrow(coded('KEY_UNWRAP_FAILED'));
    expect(() => aeadUnwrap(randomBytes(32), blob, 'ctx')).toThrow(coded('KEY_UNWRAP_FAILED'));
    expect(() => aeadUnwrap(k, blob.subarray(0, 20), 'ctx')).toThrow(coded('KEY_UNWRAP_FAILED'));
  });
});
