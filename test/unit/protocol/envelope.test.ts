import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateP256KeyPair, spkiOf } from '../../../src/crypto/ecdsa.js';
import { ReplayGuard } from '../../../src/crypto/replay-guard.js';
import { isKeywardenError, type ErrorCode } from '../../../src/errors/index.js';
import {
  decodeMessage,
  encodeMessage,
  keywarden,
  MessageType,
  signMessage,
  verifyMessage,
  type VerifyOptions,
} from '../../../src/protocol/index.js';
import { issue, makePki, type TestPki } from './test-pki.js';

const v1 = keywarden.v1;
const T = MessageType.LICENSE_RESPONSE;

function expectCode(fn: () => unknown, code: ErrorCode): void {
  try {
    fn();
  } catch (err) {
    if (isKeywardenError(err)) return expect(err.code).toBe(code);
    throw err;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

let pki: TestPki;
let other: TestPki;
beforeAll(async () => {
  pki = await makePki('Operator');
  other = await makePki('Other');
});

const signer = (): { privateKey: import('node:crypto').KeyObject; chain: Uint8Array[] } => ({
  privateKey: pki.leaf.privateKey,
  chain: pki.chain,
});
const opts = (extra: Partial<VerifyOptions> = {}): VerifyOptions => ({
  trustedRoot: pki.root.der,
  ...extra,
});

/** Re-encodes an envelope after `edit` changes it. */
function editEnvelope(
  bytes: Uint8Array,
  edit: (m: keywarden.v1.SignedMessage) => void,
): Uint8Array {
  const m = decodeMessage(v1.SignedMessage, bytes, 'test');
  edit(m);
  return encodeMessage(v1.SignedMessage, m);
}

describe('signed envelope', () => {
  it('round-trips payload, nonce, timestamp and signer', () => {
    const payload = randomBytes(100);
    const bytes = signMessage(T, payload, signer(), { inReplyTo: Buffer.alloc(16, 7) });
    const out = verifyMessage(
      bytes,
      T,
      opts({ replayGuard: new ReplayGuard({ windowMs: 600_000 }) }),
    );
    expect(Buffer.from(out.payload).equals(payload)).toBe(true);
    expect(out.nonce).toHaveLength(16);
    expect(Math.abs(out.timestamp - Date.now())).toBeLessThan(5000);
    expect(out.signerCert?.subject).toContain('Operator License Server');
    expect(out.chain).toHaveLength(2);
    expect(Buffer.from(out.inReplyTo).equals(Buffer.alloc(16, 7))).toBe(true);
  });

  it('accepts a chain that includes the root', () => {
    const bytes = signMessage(T, Buffer.from('x'), {
      ...signer(),
      chain: [...pki.chain, pki.root.der],
    });
    expect(verifyMessage(bytes, T, opts()).chain).toHaveLength(2);
  });

  it('refuses a tampered body', () => {
    const bytes = signMessage(T, Buffer.from('pay me'), signer());
    const tampered = editEnvelope(bytes, (m) => {
      const body = decodeMessage(v1.SignedBody, m.body, 'b');
      body.payload = Buffer.from('pay us');
      m.body = encodeMessage(v1.SignedBody, body);
    });
    expectCode(() => verifyMessage(tampered, T, opts()), 'SIGNATURE_INVALID');
  });

  it('refuses a tampered signature', () => {
    const bytes = signMessage(T, Buffer.from('x'), signer());
    const flipped = editEnvelope(bytes, (m) => {
      const sig = Buffer.from(m.signature);
      sig[sig.length - 3]! ^= 1;
      m.signature = sig;
    });
    expectCode(() => verifyMessage(flipped, T, opts()), 'SIGNATURE_INVALID');
    const garbage = editEnvelope(bytes, (m) => void (m.signature = randomBytes(70)));
    expectCode(() => verifyMessage(garbage, T, opts()), 'SIGNATURE_INVALID');
  });

  it('refuses a signature by a key other than the leaf', () => {
    const bytes = signMessage(T, Buffer.from('x'), {
      privateKey: generateP256KeyPair().privateKey,
      chain: pki.chain,
    });
    expectCode(() => verifyMessage(bytes, T, opts()), 'SIGNATURE_INVALID');
  });

  it('refuses a tampered or broken chain', () => {
    const bytes = signMessage(T, Buffer.from('x'), signer());
    const corrupt = editEnvelope(bytes, (m) => {
      const leaf = Buffer.from(m.certChain[0]!);
      leaf[leaf.length - 10]! ^= 0xff; // inside the certificate signature
      m.certChain[0] = leaf;
    });
    expectCode(() => verifyMessage(corrupt, T, opts()), 'CERT_CHAIN_INVALID');
    const junk = editEnvelope(bytes, (m) => void (m.certChain[0] = randomBytes(200)));
    expectCode(() => verifyMessage(junk, T, opts()), 'CERT_CHAIN_INVALID');
    const noIntermediate = editEnvelope(bytes, (m) => void m.certChain.pop());
    expectCode(() => verifyMessage(noIntermediate, T, opts()), 'CERT_UNTRUSTED_ROOT');
    const empty = editEnvelope(bytes, (m) => void (m.certChain = []));
    expectCode(() => verifyMessage(empty, T, opts()), 'CERT_CHAIN_INVALID');
    const tooLong = editEnvelope(
      bytes,
      (m) => void m.certChain.push(...Array(8).fill(pki.intermediate.der)),
    );
    expectCode(() => verifyMessage(tooLong, T, opts()), 'CERT_CHAIN_INVALID');
  });

  it('refuses a chain from another root', () => {
    const bytes = signMessage(T, Buffer.from('x'), {
      privateKey: other.leaf.privateKey,
      chain: other.chain,
    });
    expectCode(() => verifyMessage(bytes, T, opts()), 'CERT_UNTRUSTED_ROOT');
    const withRoot = signMessage(T, Buffer.from('x'), {
      privateKey: other.leaf.privateKey,
      chain: [...other.chain, other.root.der],
    });
    expectCode(() => verifyMessage(withRoot, T, opts()), 'CERT_UNTRUSTED_ROOT');
  });

  it('refuses an expired or not-yet-valid certificate', async () => {
    const past = new Date(Date.now() - 10 * 86_400_000);
    const expired = await issue('Expired Server', pki.intermediate, {
      notBefore: past,
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const a = signMessage(T, Buffer.from('x'), {
      privateKey: expired.privateKey,
      chain: [expired.der, pki.intermediate.der],
    });
    expectCode(() => verifyMessage(a, T, opts()), 'CERT_EXPIRED');
    const future = await issue('Future Server', pki.intermediate, {
      notBefore: new Date(Date.now() + 86_400_000),
      notAfter: new Date(Date.now() + 2 * 86_400_000),
    });
    const b = signMessage(T, Buffer.from('x'), {
      privateKey: future.privateKey,
      chain: [future.der, pki.intermediate.der],
    });
    expectCode(() => verifyMessage(b, T, opts()), 'CERT_EXPIRED');
  });

  it('refuses a chain whose issuer is not a CA', async () => {
    const notCa = await issue('Leaf As Issuer', pki.intermediate);
    const child = await issue('Child', notCa);
    const bytes = signMessage(T, Buffer.from('x'), {
      privateKey: child.privateKey,
      chain: [child.der, notCa.der, pki.intermediate.der],
    });
    expectCode(() => verifyMessage(bytes, T, opts()), 'CERT_CHAIN_INVALID');
  });

  it('refuses an issuer whose key usage forbids certificate signing', async () => {
    const { KeyUsageFlags } = await import('@peculiar/x509');
    const ca = await issue('No keyCertSign CA', pki.root, {
      ca: true,
      keyUsage: KeyUsageFlags.digitalSignature,
    });
    const child = await issue('Child', ca);
    const bytes = signMessage(T, Buffer.from('x'), {
      privateKey: child.privateKey,
      chain: [child.der, ca.der],
    });
    expectCode(() => verifyMessage(bytes, T, opts()), 'CERT_CHAIN_INVALID');
  });

  it('refuses the wrong message type', () => {
    const bytes = signMessage(MessageType.LICENSE_REQUEST, Buffer.from('x'), signer());
    expectCode(() => verifyMessage(bytes, T, opts()), 'MESSAGE_TYPE_MISMATCH');
  });

  it('refuses a replayed nonce and a stale or future timestamp', () => {
    const guard = new ReplayGuard({ windowMs: 600_000 });
    const bytes = signMessage(T, Buffer.from('x'), signer());
    verifyMessage(bytes, T, opts({ replayGuard: guard }));
    expectCode(() => verifyMessage(bytes, T, opts({ replayGuard: guard })), 'NONCE_REPLAYED');
    const old = signMessage(T, Buffer.from('x'), signer(), { nowMs: Date.now() - 10 * 60_000 });
    expectCode(() => verifyMessage(old, T, opts()), 'MESSAGE_STALE');
    const ahead = signMessage(T, Buffer.from('x'), signer(), { nowMs: Date.now() + 10 * 60_000 });
    expectCode(() => verifyMessage(ahead, T, opts()), 'MESSAGE_STALE');
  });

  it('refuses a response that answers another request', () => {
    const bytes = signMessage(T, Buffer.from('x'), signer(), { inReplyTo: Buffer.alloc(16, 1) });
    expectCode(
      () => verifyMessage(bytes, T, opts({ expectedInReplyTo: Buffer.alloc(16, 2) })),
      'NONCE_REPLAYED',
    );
  });

  it('does not remember nonces of forged messages', () => {
    const guard = new ReplayGuard({ windowMs: 600_000 });
    const nonce = randomBytes(16);
    const forged = signMessage(
      T,
      Buffer.from('x'),
      { privateKey: other.leaf.privateKey, chain: pki.chain },
      { nonce },
    );
    expectCode(() => verifyMessage(forged, T, opts({ replayGuard: guard })), 'SIGNATURE_INVALID');
    const genuine = signMessage(T, Buffer.from('x'), signer(), { nonce });
    expect(() => verifyMessage(genuine, T, opts({ replayGuard: guard }))).not.toThrow();
  });

  it('verifies proof of possession for provisioning requests', () => {
    const device = generateP256KeyPair();
    const req = encodeMessage(
      v1.ProvisioningRequest,
      v1.ProvisioningRequest.create({ devicePublicKey: spkiOf(device.publicKey) }),
    );
    const pop = (payload: Uint8Array): Uint8Array =>
      decodeMessage(v1.ProvisioningRequest, payload, 'req').devicePublicKey;
    const type = MessageType.PROVISIONING_REQUEST;
    const good = signMessage(type, req, { privateKey: device.privateKey, chain: [] });
    expect(verifyMessage(good, type, { proofOfPossession: pop }).signerCert).toBeUndefined();
    const stolen = signMessage(type, req, {
      privateKey: generateP256KeyPair().privateKey,
      chain: [],
    });
    expectCode(() => verifyMessage(stolen, type, { proofOfPossession: pop }), 'SIGNATURE_INVALID');
    const chained = signMessage(type, req, { privateKey: device.privateKey, chain: pki.chain });
    expectCode(() => verifyMessage(chained, type, { proofOfPossession: pop }), 'PROTOCOL_ERROR');
    expectCode(() => verifyMessage(good, type, {}), 'CERT_UNTRUSTED_ROOT');
  });

  it('refuses a nonce of the wrong size', () => {
    const bytes = signMessage(T, Buffer.from('x'), signer(), { nonce: Buffer.alloc(4) });
    expectCode(() => verifyMessage(bytes, T, opts()), 'DECODE_FAILED');
  });
});
