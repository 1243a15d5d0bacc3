import { randomBytes, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { isKeywardenError, type ErrorCode } from '../../../src/errors/index.js';
import {
  CommandNonceSet,
  FleetVerifier,
  VerifiedChainCache,
  verifyCommand,
  verifyRevocationList,
} from '../../../src/fleet/index.js';
import { MessageType, signMessage, verifyMessage } from '../../../src/protocol/envelope.js';
import { keywarden } from '../../../src/protocol/generated/proto.js';
import {
  keySigner,
  listPayload,
  makeFleetPki,
  signedCommand,
  signedList,
  type FleetPki,
} from '../../helpers/fleet-pki.js';

const v1 = keywarden.v1;
let pki: FleetPki;
const NOW = Date.now();

beforeAll(async () => {
  pki = await makeFleetPki('dev-0001');
});

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (err) {
    if (isKeywardenError(err)) return err.code;
    throw err;
  }
  return undefined;
}

function verifier(): FleetVerifier {
  return new FleetVerifier({ trustedRoot: pki.root.der });
}

describe('revocation list verification', () => {
  it('accepts a list signed by the fleet publisher, new then duplicate', () => {
    const v = verifier();
    const bytes = signedList(pki.publisher, 3, {}, { nowMs: NOW });
    const a = v.revocationList(bytes, { nowMs: NOW, appliedNumber: 2 });
    expect(a.kind).toBe('new');
    expect(a.number).toBe(3);
    expect(a.list.entries[0]?.value).toBe('dev-bad');
    const b = v.revocationList(bytes, { nowMs: NOW, appliedNumber: 3 });
    expect(b.kind).toBe('duplicate');
    expect(v.counters()).toMatchObject({ listsAccepted: 1, listsDuplicate: 1, rejected: 0 });
  });

  it('accepts an old retained list (signed days ago) while its certs are valid', () => {
    const old = NOW - 3 * 86_400_000;
    const bytes = signedList(pki.publisher, 1, {}, { nowMs: old });
    expect(
      verifyRevocationList(bytes, { nowMs: NOW, appliedNumber: 0 }, { trustedRoot: pki.root.der })
        .kind,
    ).toBe('new');
  });

  it('refuses every bad list with a coded error, counted', () => {
    const v = verifier();
    const ctx = { nowMs: NOW, appliedNumber: 5 };
    // Signed by another key, presenting the publisher's certificate.
    const forged = signMessage(
      MessageType.FLEET_REVOCATION_LIST,
      listPayload(9, {}, NOW),
      { privateKey: pki.otherPublisher.privateKey, chain: [pki.publisher.der] },
      { nowMs: NOW },
    );
    // A genuine envelope whose body was altered after signing.
    const env = v1.SignedMessage.decode(signedList(pki.publisher, 9, {}, { nowMs: NOW }));
    const body = v1.SignedBody.decode(env.body);
    body.payload = listPayload(10, {}, NOW);
    env.body = v1.SignedBody.encode(body).finish();
    const tampered = v1.SignedMessage.encode(env).finish();
    const cases: [string, Uint8Array, ErrorCode[]][] = [
      ['forged', forged, ['SIGNATURE_INVALID']],
      ['tampered', tampered, ['SIGNATURE_INVALID']],
      [
        'another root',
        signedList(pki.otherPublisher, 9, {}, { nowMs: NOW }),
        ['CERT_UNTRUSTED_ROOT'],
      ],
      [
        'device as signer',
        signedList(pki.device, 9, {}, { nowMs: NOW }),
        ['FLEET_SIGNER_NOT_PUBLISHER'],
      ],
      [
        'publisher under an intermediate',
        signedList(pki.intermediatePublisher, 9, {}, { nowMs: NOW, chain: [pki.intermediate] }),
        ['FLEET_SIGNER_NOT_PUBLISHER'],
      ],
      [
        'wrong type',
        signMessage(MessageType.FLEET_COMMAND, listPayload(9, {}, NOW), keySigner(pki.publisher), {
          nowMs: NOW,
        }),
        ['MESSAGE_TYPE_MISMATCH'],
      ],
      ['older number', signedList(pki.publisher, 4, {}, { nowMs: NOW }), ['FLEET_LIST_OUTDATED']],
      [
        'issued in the future',
        signedList(pki.publisher, 9, { issuedAtMs: NOW + 3_600_000 }, { nowMs: NOW }),
        ['MESSAGE_STALE'],
      ],
      [
        'signed in the future',
        signedList(pki.publisher, 9, {}, { nowMs: NOW + 3_600_000 }),
        ['MESSAGE_STALE'],
      ],
      ['number 0', signedList(pki.publisher, 0, {}, { nowMs: NOW }), ['PROTOCOL_ERROR']],
      [
        'entry without kind',
        signedList(pki.publisher, 9, { entries: [{ kind: 0, value: 'x' }] }, { nowMs: NOW }),
        ['PROTOCOL_ERROR'],
      ],
      ['oversized', new Uint8Array((1 << 20) + 1), ['FLEET_PAYLOAD_TOO_LARGE']],
      ['empty', new Uint8Array(0), ['DECODE_FAILED', 'CERT_CHAIN_INVALID']],
    ];
    for (const [name, bytes, codes] of cases) {
      const code = codeOf(() => v.revocationList(bytes, ctx));
      expect(codes, name).toContain(code);
    }
    const c = v.counters();
    expect(c.rejected).toBe(cases.length);
    expect(c.listsAccepted).toBe(0);
    expect(c.rejectedByCode.MESSAGE_STALE).toBe(2);
    expect(c.rejectedByCode.FLEET_LIST_OUTDATED).toBe(1);
  });

  it('honours a smaller configured size limit before decoding', () => {
    const bytes = signedList(pki.publisher, 9, {}, { nowMs: NOW });
    const code = codeOf(() =>
      verifyRevocationList(
        bytes,
        { nowMs: NOW, appliedNumber: 0 },
        { trustedRoot: pki.root.der, maxPayloadBytes: 100 },
      ),
    );
    expect(code).toBe('FLEET_PAYLOAD_TOO_LARGE');
  });

  it('random garbage never throws anything but a coded error', () => {
    const v = verifier();
    for (let i = 0; i < 300; i++) {
      const bytes = randomBytes(i % 7 === 0 ? 0 : 1 + ((i * 37) % 2000));
      expect(codeOf(() => v.revocationList(bytes, { nowMs: NOW, appliedNumber: 0 }))).toBeDefined();
      expect(
        codeOf(() =>
          v.command(bytes, { nowMs: NOW, deviceId: 'dev-0001', nonces: new CommandNonceSet() }),
        ),
      ).toBeDefined();
    }
    expect(v.counters().rejected).toBe(600);
  });

  it('a valid list with any byte flipped is refused with a coded error', () => {
    const good = signedList(pki.publisher, 9, {}, { nowMs: NOW });
    for (let i = 0; i < good.length; i += 3) {
      const bad = Uint8Array.from(good);
      bad[i] = bad[i]! ^ 0x5a;
      let ok = false;
      try {
        verifyRevocationList(bad, { nowMs: NOW, appliedNumber: 0 }, { trustedRoot: pki.root.der });
        ok = true;
      } catch (err) {
        expect(isKeywardenError(err)).toBe(true);
      }
      expect(ok).toBe(false);
    }
  });
});

describe('command verification', () => {
  const ctx = () => ({ nowMs: NOW, deviceId: 'dev-0001', nonces: new CommandNonceSet() });

  it('accepts a command for us, refuses its replay once remembered', () => {
    const v = verifier();
    const c = ctx();
    const bytes = signedCommand(pki.publisher, { id: 'c1' }, { nowMs: NOW });
    const ok = v.command(bytes, c);
    expect(ok.command.id).toBe('c1');
    // Not remembered by verification alone (pure):
    expect(v.command(bytes, c).command.id).toBe('c1');
    c.nonces.remember(ok.nonce, ok.signedAtMs, ok.expiresAtMs, NOW);
    expect(codeOf(() => v.command(bytes, c))).toBe('NONCE_REPLAYED');
    expect(v.counters()).toMatchObject({ commandsAccepted: 2, rejected: 1 });
  });

  it('refuses bad commands with coded errors and a command id when authenticated', () => {
    const v = verifier();
    const cases: [string, Uint8Array, ErrorCode, boolean][] = [
      [
        'another device',
        signedCommand(pki.publisher, { deviceId: 'dev-9' }, { nowMs: NOW }),
        'FLEET_WRONG_DEVICE',
        false,
      ],
      [
        'expired',
        signedCommand(pki.publisher, { expiresAtMs: NOW - 1 }, { nowMs: NOW - 10_000 }),
        'FLEET_COMMAND_EXPIRED',
        true,
      ],
      [
        'no expiry',
        signedCommand(pki.publisher, { expiresAtMs: 0 }, { nowMs: NOW }),
        'PROTOCOL_ERROR',
        true,
      ],
      [
        'too long-lived',
        signedCommand(pki.publisher, { expiresAtMs: NOW + 31 * 86_400_000 }, { nowMs: NOW }),
        'PROTOCOL_ERROR',
        true,
      ],
      [
        'no action',
        signedCommand(pki.publisher, { action: 0 }, { nowMs: NOW }),
        'PROTOCOL_ERROR',
        true,
      ],
      [
        'device as signer',
        signedCommand(pki.device, {}, { nowMs: NOW }),
        'FLEET_SIGNER_NOT_PUBLISHER',
        false,
      ],
      [
        'another root',
        signedCommand(pki.otherPublisher, {}, { nowMs: NOW }),
        'CERT_UNTRUSTED_ROOT',
        false,
      ],
      [
        'wrong type',
        signMessage(MessageType.FLEET_REVOCATION_LIST, listPayload(1), keySigner(pki.publisher), {
          nowMs: NOW,
        }),
        'MESSAGE_TYPE_MISMATCH',
        false,
      ],
    ];
    for (const [name, bytes, code, withId] of cases) {
      let err: unknown;
      try {
        v.command(bytes, ctx());
      } catch (e) {
        err = e;
      }
      expect(isKeywardenError(err), name).toBe(true);
      if (!isKeywardenError(err)) continue;
      expect(err.code, name).toBe(code);
      expect(typeof err.details.commandId === 'string', name).toBe(withId);
    }
    expect(v.counters().rejected).toBe(cases.length);
    expect(v.counters().commandsAccepted).toBe(0);
  });

  it('pure function form works with a persisted nonce set', () => {
    const bytes = signedCommand(pki.publisher, {}, { nowMs: NOW });
    const first = verifyCommand(bytes, ctx(), { trustedRoot: pki.root.der });
    const set = new CommandNonceSet();
    set.remember(first.nonce, first.signedAtMs, first.expiresAtMs, NOW);
    const restored = new CommandNonceSet(set.snapshot().nonces, set.snapshot().nonceFloorMs);
    expect(
      codeOf(() =>
        verifyCommand(
          bytes,
          { nowMs: NOW, deviceId: 'dev-0001', nonces: restored },
          { trustedRoot: pki.root.der },
        ),
      ),
    ).toBe('NONCE_REPLAYED');
  });
});

describe('signer chain cache', () => {
  const DAY = 86_400_000;
  const list = (n: number, nowMs = NOW): Uint8Array => signedList(pki.publisher, n, {}, { nowMs });

  it('verifies the chain once, then only the windows and each body signature', () => {
    const cache = new VerifiedChainCache();
    const opts = { trustedRoot: pki.root.der, signerCache: cache };
    for (let n = 1; n <= 5; n++)
      expect(verifyRevocationList(list(n), { nowMs: NOW, appliedNumber: 0 }, opts).number).toBe(n);
    expect(cache.stats()).toEqual({ hits: 4, misses: 1, entries: 1 });
    // The chain is cached, yet a body signed by another key with that chain is refused ...
    const forged = signMessage(
      MessageType.FLEET_REVOCATION_LIST,
      listPayload(9, {}, NOW),
      { privateKey: pki.otherPublisher.privateKey, chain: [pki.publisher.der] },
      { nowMs: NOW },
    );
    expect(codeOf(() => verifyRevocationList(forged, { nowMs: NOW, appliedNumber: 0 }, opts))).toBe(
      'SIGNATURE_INVALID',
    );
    // ... and so is a genuine body altered after signing.
    const env = v1.SignedMessage.decode(list(9));
    const body = v1.SignedBody.decode(env.body);
    body.payload = listPayload(10, {}, NOW);
    env.body = v1.SignedBody.encode(body).finish();
    const tampered = v1.SignedMessage.encode(env).finish();
    expect(
      codeOf(() => verifyRevocationList(tampered, { nowMs: NOW, appliedNumber: 0 }, opts)),
    ).toBe('SIGNATURE_INVALID');
    expect(cache.stats()).toMatchObject({ hits: 6, misses: 1 });
  });

  it('checks the validity windows against the time of each message', () => {
    const cache = new VerifiedChainCache();
    const opts = { trustedRoot: pki.root.der, signerCache: cache };
    const bytes = list(1);
    const at = (nowMs: number) =>
      codeOf(() => verifyRevocationList(bytes, { nowMs, appliedNumber: 0 }, opts));
    expect(at(NOW)).toBeUndefined();
    // The test PKI's certificates are valid from a day ago for 365 days.
    expect(at(NOW + 400 * DAY)).toBe('CERT_EXPIRED');
    expect(at(NOW - 2 * DAY)).toBe('CERT_EXPIRED');
    expect(at(NOW)).toBeUndefined();
    expect(cache.stats()).toEqual({ hits: 3, misses: 1, entries: 1 });
    // The same expiry as a cold check gives.
    expect(
      codeOf(() =>
        verifyMessage(bytes, MessageType.FLEET_REVOCATION_LIST, {
          trustedRoot: pki.root.der,
          nowMs: NOW + 400 * DAY,
          maxSkewMs: Number.POSITIVE_INFINITY,
        }),
      ),
    ).toBe('CERT_EXPIRED');
  });

  it('is keyed by the exact root and chain bytes; failures are not kept', () => {
    const cache = new VerifiedChainCache();
    const ctx = { nowMs: NOW, appliedNumber: 0 };
    verifyRevocationList(list(1), ctx, { trustedRoot: pki.root.der, signerCache: cache });
    // The cached publisher chain checked against another root: verified again, and refused.
    expect(
      codeOf(() =>
        verifyRevocationList(list(2), ctx, { trustedRoot: pki.otherRoot.der, signerCache: cache }),
      ),
    ).toBe('CERT_UNTRUSTED_ROOT');
    // A publisher of another root presenting its chain: refused, every time, never kept.
    for (let i = 0; i < 3; i++)
      expect(
        codeOf(() =>
          verifyRevocationList(signedList(pki.otherPublisher, 3, {}, { nowMs: NOW }), ctx, {
            trustedRoot: pki.root.der,
            signerCache: cache,
          }),
        ),
      ).toBe('CERT_UNTRUSTED_ROOT');
    expect(cache.stats()).toEqual({ hits: 0, misses: 5, entries: 1 });
    // A parsed root (the agent's form) hits the entry made with its DER.
    const parsed = new X509Certificate(pki.root.der);
    verifyRevocationList(list(4), ctx, { trustedRoot: parsed, signerCache: cache });
    expect(cache.stats()).toEqual({ hits: 1, misses: 5, entries: 1 });
  });

  it('stays bounded', () => {
    const cache = new VerifiedChainCache(2);
    const ctx = { nowMs: NOW, appliedNumber: 0 };
    const opts = { trustedRoot: pki.root.der, signerCache: cache };
    // Three distinct chains that all verify: the publisher, the device, the publisher + root.
    verifyRevocationList(list(1), ctx, opts);
    codeOf(() => verifyRevocationList(signedList(pki.device, 1, {}, { nowMs: NOW }), ctx, opts));
    verifyRevocationList(
      signedList(pki.publisher, 1, {}, { nowMs: NOW, chain: [pki.root] }),
      ctx,
      opts,
    );
    expect(cache.stats()).toEqual({ hits: 0, misses: 3, entries: 2 });
    // The publisher alone was the least recently used: verified again.
    verifyRevocationList(list(2), ctx, opts);
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 4, entries: 2 });
  });
});

describe('CommandNonceSet', () => {
  it('stays bounded and raises its floor on overflow', () => {
    const set = new CommandNonceSet([], 0, 3);
    const n = (i: number) => Uint8Array.from([i]);
    for (let i = 1; i <= 5; i++) set.remember(n(i), 1000 + i, 1_000_000, 1000);
    expect(set.size).toBe(3);
    expect(codeOf(() => set.check(n(1), 1001))).toBe('MESSAGE_STALE');
    expect(codeOf(() => set.check(n(5), 1005))).toBe('NONCE_REPLAYED');
    expect(codeOf(() => set.check(n(9), 1010))).toBeUndefined();
  });

  it('forgets expired entries', () => {
    const set = new CommandNonceSet([], 0, 10);
    set.remember(Uint8Array.from([1]), 100, 200, 100);
    set.remember(Uint8Array.from([2]), 300, 900, 300);
    expect(set.size).toBe(1);
  });
});
