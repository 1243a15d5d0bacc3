import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isKeywardenError } from '../../../src/errors/index.js';
import {
  decodeMessage,
  encodeMessage,
  keywarden,
  MAX_MESSAGE_BYTES,
  MessageType,
  verifyMessage,
  type MessageClass,
} from '../../../src/protocol/index.js';
import { UNTRUSTED_DECODERS } from '../../helpers/protocol-decoders.js';

const v1 = keywarden.v1;

/** Decoding must succeed or fail with DECODE_FAILED; nothing else may escape. */
function decodeOrCoded(cls: MessageClass<unknown>, bytes: Uint8Array): void {
  try {
    decodeMessage(cls, bytes, 'fuzz');
  } catch (err) {
    if (!isKeywardenError(err, 'DECODE_FAILED')) throw err;
  }
}

const sampleLicense = encodeMessage(
  v1.LicenseResponse,
  v1.LicenseResponse.create({
    license: {
      id: 'lic-1',
      type: v1.License.LicenseType.OFFLINE,
      policy: { canPlay: true, licenseDurationS: 3600, chain: { rootLicenseIds: ['r1', 'r2'] } },
      keys: [
        {
          kid: randomBytes(16),
          wrappedKey: randomBytes(110),
          rootWraps: [{ rootLicenseId: 'r1', wrappedKey: randomBytes(45) }],
        },
      ],
      issuedAtMs: Date.now(),
    },
  }),
);

describe('protocol decoders on hostile input', () => {
  it.each(UNTRUSTED_DECODERS)(
    '%s: truncations of a valid message are coded errors or decode',
    (_n, cls) => {
      for (let n = 0; n < sampleLicense.length; n++)
        decodeOrCoded(cls, sampleLicense.subarray(0, n));
    },
  );

  it.each(UNTRUSTED_DECODERS)('%s: an oversized message is DECODE_FAILED', (_n, cls) => {
    expect(() => decodeMessage(cls, new Uint8Array(MAX_MESSAGE_BYTES + 1), 'big')).toThrow(
      expect.objectContaining({ code: 'DECODE_FAILED' }) as Error,
    );
  });

  it.each(UNTRUSTED_DECODERS)('%s: random bytes never crash', (_n, cls) => {
    for (let i = 0; i < 300; i++) decodeOrCoded(cls, randomBytes(1 + (i % 97)));
  });

  it('refuses lengths that overflow the buffer', () => {
    // field 1, wire type 2, length 2^31: far beyond the 3 bytes that follow.
    const bytes = Uint8Array.of(0x0a, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 2, 3);
    expect(() => decodeMessage(v1.SignedMessage, bytes, 'overflow')).toThrow(
      expect.objectContaining({ code: 'DECODE_FAILED' }) as Error,
    );
  });

  it('fuzz: mutated envelopes give coded errors from verifyMessage', () => {
    const env = encodeMessage(
      v1.SignedMessage,
      v1.SignedMessage.create({
        body: sampleLicense,
        signature: randomBytes(70),
        certChain: [randomBytes(300)],
      }),
    );
    for (let i = 0; i < 2000; i++) {
      const m = Buffer.from(env);
      for (let k = 0; k < 1 + (i % 5); k++)
        m[(i * 7919 + k * 104729) % m.length] = randomBytes(1)[0]!;
      try {
        verifyMessage(m, MessageType.LICENSE_RESPONSE, { trustedRoot: randomBytes(10) });
      } catch (err) {
        expect(isKeywardenError(err), String(err)).toBe(true);
      }
    }
  });
});
