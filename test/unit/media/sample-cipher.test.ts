/**
 * The SampleCipher contract, run against both implementations (the addon and node:crypto)
 * and checked against the block-by-block reference in test/unit/native/cenc-reference.ts.
 */
import { describe, expect, it } from 'vitest';

import { isKeywardenError, type ErrorCode } from '../../../src/errors/index.js';
import { jsCipherFactory } from '../../../src/media/js-sample-cipher.js';
import { nativeCipherFactory } from '../../../src/media/native-sample-cipher.js';
import type { SampleBatch, SampleCipherFactory } from '../../../src/media/sample-crypto.js';
import { randomBatch, referenceCrypt, SCHEMES } from '../native/cenc-reference.js';

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i * 17 + 3);
const FACTORIES: SampleCipherFactory[] = [nativeCipherFactory, jsCipherFactory];

function encryptedByReference(clear: Uint8Array, batch: SampleBatch): Uint8Array {
  const out = Uint8Array.from(clear);
  referenceCrypt(KEY, out, batch, true);
  return out;
}

function okBatch(): { data: Uint8Array; batch: SampleBatch } {
  return {
    data: new Uint8Array(256).map((_, i) => i),
    batch: {
      scheme: 'cenc',
      cryptByteBlock: 0,
      skipByteBlock: 0,
      samples: Uint32Array.from([0, 100, 0, 2, 128, 64, 0, 0]),
      ivs: new Uint8Array(32).fill(7),
      subsamples: Uint32Array.from([10, 40, 5, 45]),
    },
  };
}

/** Single-fault batches, each with the code it must raise. */
const BAD_MAPS: Array<[string, ErrorCode, (b: SampleBatch) => SampleBatch]> = [
  [
    'offset beyond the buffer',
    'MEDIA_SAMPLE_OUT_OF_RANGE',
    (b) => ({ ...b, samples: Uint32Array.from([0, 100, 0, 2, 300, 1, 0, 0]) }),
  ],
  [
    'size overflow 0xFFFFFFFF',
    'MEDIA_SAMPLE_OUT_OF_RANGE',
    (b) => ({ ...b, samples: Uint32Array.from([1, 0xffffffff, 0, 0]) }),
  ],
  [
    'offset+size past 2^32',
    'MEDIA_SAMPLE_OUT_OF_RANGE',
    (b) => ({ ...b, samples: Uint32Array.from([0xfffffff0, 0x20, 0, 0]) }),
  ],
  [
    'subsample sum > sample size',
    'MEDIA_SUBSAMPLE_OVERFLOW',
    (b) => ({ ...b, subsamples: Uint32Array.from([10, 40, 5, 46]) }),
  ],
  [
    'subsample sum overflowing 32 bits',
    'MEDIA_SUBSAMPLE_OVERFLOW',
    (b) => ({ ...b, subsamples: Uint32Array.from([0xffffffff, 0xffffffff, 0, 0]) }),
  ],
  [
    'subsample index out of range',
    'NATIVE_BAD_ARGUMENT',
    (b) => ({ ...b, samples: Uint32Array.from([0, 100, 1, 2]) }),
  ],
  [
    'subsample index near 2^32',
    'NATIVE_BAD_ARGUMENT',
    (b) => ({ ...b, samples: Uint32Array.from([0, 100, 0xffffffff, 2]) }),
  ],
  ['short ivs', 'MEDIA_BAD_IV', (b) => ({ ...b, ivs: new Uint8Array(31) })],
  [
    'unknown scheme',
    'MEDIA_UNKNOWN_SCHEME',
    (b) => ({ ...b, scheme: 'cbcx' as SampleBatch['scheme'] }),
  ],
  [
    'crypt > 15',
    'NATIVE_BAD_PATTERN',
    (b) => ({ ...b, scheme: 'cbcs', cryptByteBlock: 16, skipByteBlock: 1 }),
  ],
  [
    'skip > 15',
    'NATIVE_BAD_PATTERN',
    (b) => ({ ...b, scheme: 'cens', cryptByteBlock: 1, skipByteBlock: 255 }),
  ],
  [
    'pattern 0:N',
    'NATIVE_BAD_PATTERN',
    (b) => ({ ...b, scheme: 'cbcs', cryptByteBlock: 0, skipByteBlock: 9 }),
  ],
  [
    'fractional pattern',
    'NATIVE_BAD_PATTERN',
    (b) => ({ ...b, scheme: 'cbcs', cryptByteBlock: 1.5, skipByteBlock: 9 }),
  ],
  [
    'samples length not a multiple of 4',
    'NATIVE_BAD_ARGUMENT',
    (b) => ({ ...b, samples: Uint32Array.from([0, 100, 0, 2, 128]) }),
  ],
  [
    'odd subsamples length',
    'NATIVE_BAD_ARGUMENT',
    (b) => ({ ...b, subsamples: Uint32Array.from([10, 40, 5]) }),
  ],
  [
    'samples not a Uint32Array',
    'NATIVE_BAD_ARGUMENT',
    (b) => ({ ...b, samples: new Int32Array(b.samples) as unknown as Uint32Array }),
  ],
];

describe.each(FACTORIES)('SampleCipher contract: $name', (factory) => {
  for (const scheme of SCHEMES) {
    for (const fullSample of [true, false]) {
      it(`${scheme} ${fullSample ? 'full-sample' : 'subsample'}: matches the reference`, async () => {
        const cipher = factory.create(KEY);
        for (let trial = 0; trial < 40; trial++) {
          const { data: clear, batch } = randomBatch({ scheme, fullSample });
          const expected = encryptedByReference(clear, batch);
          const enc = Uint8Array.from(clear);
          if (trial % 2) cipher.encryptSync(enc, batch);
          else await cipher.encrypt(enc, batch);
          expect(Buffer.from(enc).equals(expected), `encrypt trial ${trial}`).toBe(true);
          const dec = Uint8Array.from(expected);
          if (trial % 2) await cipher.decrypt(dec, batch);
          else cipher.decryptSync(dec, batch);
          expect(Buffer.from(dec).equals(clear), `decrypt trial ${trial}`).toBe(true);
        }
        cipher.close();
      });
    }
  }

  it('leaves bytes after the listed subsamples and outside samples clear', () => {
    const { data, batch } = okBatch();
    const copy = Uint8Array.from(data);
    factory.create(KEY).encryptSync(data, batch);
    expect(Buffer.from(data.subarray(100, 128)).equals(copy.subarray(100, 128))).toBe(true);
    expect(Buffer.from(data.subarray(192)).equals(copy.subarray(192))).toBe(true);
    expect(Buffer.from(data.subarray(10, 50)).equals(copy.subarray(10, 50))).toBe(false);
  });

  it('ignores a pattern on cenc and cbc1', () => {
    for (const scheme of ['cenc', 'cbc1'] as const) {
      const { data, batch } = okBatch();
      const a = Uint8Array.from(data);
      const b = Uint8Array.from(data);
      factory.create(KEY).encryptSync(a, { ...batch, scheme });
      factory.create(KEY).encryptSync(b, { ...batch, scheme, cryptByteBlock: 1, skipByteBlock: 9 });
      expect(Buffer.from(a).equals(b)).toBe(true);
    }
  });

  describe('rejects bad maps with a code and leaves the data untouched', () => {
    it.each(BAD_MAPS)('%s → %s', async (_name, code, corrupt) => {
      const cipher = factory.create(KEY);
      const { data, batch } = okBatch();
      const before = Uint8Array.from(data);
      const bad = corrupt(batch);
      for (const run of [
        () => cipher.decryptSync(data, bad),
        () => cipher.encryptSync(data, bad),
      ]) {
        let caught: unknown;
        try {
          run();
        } catch (err) {
          caught = err;
        }
        expect(isKeywardenError(caught, code), String(caught)).toBe(true);
      }
      await expect(cipher.decrypt(data, bad)).rejects.toMatchObject({ code });
      expect(Buffer.from(data).equals(before)).toBe(true);
    });

    it('reports the sample index', () => {
      const { data, batch } = okBatch();
      const bad = { ...batch, samples: Uint32Array.from([0, 100, 0, 2, 250, 64, 0, 0]) };
      expect(() => factory.create(KEY).decryptSync(data, bad)).toThrow(
        expect.objectContaining({ code: 'MEDIA_SAMPLE_OUT_OF_RANGE', details: { sample: 1 } }),
      );
    });

    it('rejects a key that is not 16 bytes', () => {
      for (const key of [new Uint8Array(15), new Uint8Array(32), new Uint8Array(0)]) {
        expect(() => factory.create(key)).toThrow(
          expect.objectContaining({ code: 'NATIVE_BAD_KEY' }),
        );
      }
    });
  });

  it('throws NATIVE_CLOSED after close', async () => {
    const cipher = factory.create(KEY);
    const { data, batch } = okBatch();
    cipher.close();
    expect(() => cipher.decryptSync(data, batch)).toThrow(
      expect.objectContaining({ code: 'NATIVE_CLOSED' }),
    );
    await expect(cipher.encrypt(data, batch)).rejects.toMatchObject({ code: 'NATIVE_CLOSED' });
  });
});

describe('native and node:crypto agree', () => {
  it('on large samples with realistic maps, for every scheme', () => {
    for (const scheme of SCHEMES) {
      const { data, batch } = randomBatch({ scheme, maxSamples: 4, maxSampleSize: 200_000 });
      const a = Uint8Array.from(data);
      const b = Uint8Array.from(data);
      nativeCipherFactory.create(KEY).encryptSync(a, batch);
      jsCipherFactory.create(KEY).encryptSync(b, batch);
      expect(Buffer.from(a).equals(b), scheme).toBe(true);
    }
  });
});
