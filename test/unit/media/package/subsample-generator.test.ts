import { describe, expect, it } from 'vitest';
import type { Subsample } from '../../../../src/media/cenc-types.js';
import type { SliceHeaderParser } from '../../../../src/media/codec/slice-header-parser.js';
import { trackProtection, ivSizeFor } from '../../../../src/media/package/scheme-policy.js';
import {
  MAX_CLEAR_BYTES,
  SubsampleBuilder,
  videoSubsamples,
} from '../../../../src/media/package/subsample-generator.js';

/** A fake parser: NAL type = first byte; type 1 is a slice whose header is `header` bytes (NAL header included). */
function fakeParser(header: number, lengthSize = 4): SliceHeaderParser {
  return {
    codec: 'h264',
    nalLengthSize: lengthSize,
    clearHeaderBytes: (nal) => (nal[0] === 1 ? header : undefined),
  };
}

/** Builds a length-prefixed sample from (type, size) NAL units. */
function sample(units: Array<[number, number]>, lengthSize = 4): Uint8Array {
  const parts: number[] = [];
  for (const [type, size] of units) {
    for (let i = lengthSize - 1; i >= 0; i--) parts.push(Math.floor(size / 256 ** i) % 256);
    parts.push(type, ...new Array<number>(size - 1).fill(0xaa));
  }
  return Uint8Array.from(parts);
}

const total = (subs: readonly Subsample[]): number =>
  subs.reduce((n, s) => n + s.clear + s.protected, 0);

describe('SubsampleBuilder', () => {
  it('moves the misaligned remainder into the clear bytes in front (cbc1, cens, cenc)', () => {
    const b = new SubsampleBuilder(true);
    b.add(10, 100); // 100 = 6 * 16 + 4
    expect(b.finish()).toEqual([{ clear: 14, protected: 96 }]);
  });

  it('keeps the protected range right after the header without alignment (cbcs)', () => {
    const b = new SubsampleBuilder(false);
    b.add(10, 100);
    expect(b.finish()).toEqual([{ clear: 10, protected: 100 }]);
  });

  it('merges clear-only regions into the next subsample and emits trailing clear bytes', () => {
    const b = new SubsampleBuilder(true);
    b.add(30, 0); // e.g. SPS
    b.add(20, 0); // PPS
    b.add(5, 64);
    b.add(7, 0); // trailing SEI
    expect(b.finish()).toEqual([
      { clear: 55, protected: 64 },
      { clear: 7, protected: 0 },
    ]);
  });

  it('leaves protected parts under one block clear', () => {
    for (const align of [true, false]) {
      const b = new SubsampleBuilder(align);
      b.add(5, 15);
      expect(b.finish()).toEqual([{ clear: 20, protected: 0 }]);
    }
  });

  it('splits clear runs above 65535 bytes into (65535, 0) entries', () => {
    const b = new SubsampleBuilder(true);
    b.add(70000, 0);
    b.add(10, 32);
    const subs = b.finish();
    expect(subs).toEqual([
      { clear: MAX_CLEAR_BYTES, protected: 0 },
      { clear: 70010 - MAX_CLEAR_BYTES, protected: 32 },
    ]);
    expect(subs.every((s) => s.clear <= MAX_CLEAR_BYTES)).toBe(true);
  });

  it('splits a huge trailing clear region as well', () => {
    const b = new SubsampleBuilder(false);
    b.add(3 * MAX_CLEAR_BYTES + 3, 0);
    expect(b.finish()).toEqual([
      { clear: MAX_CLEAR_BYTES, protected: 0 },
      { clear: MAX_CLEAR_BYTES, protected: 0 },
      { clear: MAX_CLEAR_BYTES, protected: 0 },
      { clear: 3, protected: 0 },
    ]);
  });
});

describe('videoSubsamples', () => {
  it('keeps non-VCL NAL units clear and protects slice data after the slice header', () => {
    // SPS-like (7), SEI-like (6), two slices (1) of 200 and 37 bytes with 6-byte headers
    const s = sample([
      [7, 20],
      [6, 30],
      [1, 200],
      [1, 37],
    ]);
    const subs = videoSubsamples(s, fakeParser(6), true);
    expect(total(subs)).toBe(s.length);
    // slice 1: 194 protected → 192 aligned; slice 2: 31 → 16
    expect(subs).toEqual([
      { clear: 4 + 20 + 4 + 30 + 4 + 6 + 2, protected: 192 },
      { clear: 4 + 6 + 15, protected: 16 },
    ]);
  });

  it('protects from the first byte after the slice header for cbcs', () => {
    const s = sample([[1, 200]]);
    expect(videoSubsamples(s, fakeParser(6), false)).toEqual([{ clear: 10, protected: 194 }]);
  });

  it('honours 1- and 2-byte NAL length prefixes', () => {
    for (const size of [1, 2]) {
      const s = sample(
        [
          [9, 2],
          [1, 100],
        ],
        size,
      );
      const subs = videoSubsamples(s, fakeParser(3, size), true);
      expect(total(subs)).toBe(s.length);
      expect(subs[0]!.protected).toBe(96);
    }
  });

  it('refuses a NAL length that runs past the sample with MEDIA_BITSTREAM', () => {
    const s = sample([[1, 100]]).subarray(0, 50);
    expect(() => videoSubsamples(s, fakeParser(3), true)).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
  });
});

describe('scheme policy', () => {
  it.each([
    [
      'cenc',
      'video',
      {
        tencVersion: 0,
        cryptByteBlock: 0,
        skipByteBlock: 0,
        perSampleIvSize: 8,
        subsamples: true,
        alignProtected: true,
      },
    ],
    [
      'cenc',
      'audio',
      {
        tencVersion: 0,
        cryptByteBlock: 0,
        skipByteBlock: 0,
        perSampleIvSize: 8,
        subsamples: false,
        alignProtected: false,
      },
    ],
    [
      'cens',
      'video',
      {
        tencVersion: 1,
        cryptByteBlock: 1,
        skipByteBlock: 9,
        perSampleIvSize: 8,
        subsamples: true,
        alignProtected: true,
      },
    ],
    [
      'cens',
      'audio',
      {
        tencVersion: 1,
        cryptByteBlock: 0,
        skipByteBlock: 0,
        perSampleIvSize: 8,
        subsamples: false,
        alignProtected: false,
      },
    ],
    [
      'cbc1',
      'video',
      {
        tencVersion: 0,
        cryptByteBlock: 0,
        skipByteBlock: 0,
        perSampleIvSize: 16,
        subsamples: true,
        alignProtected: true,
      },
    ],
    [
      'cbcs',
      'video',
      {
        tencVersion: 1,
        cryptByteBlock: 1,
        skipByteBlock: 9,
        perSampleIvSize: 0,
        subsamples: true,
        alignProtected: false,
      },
    ],
    [
      'cbcs',
      'audio',
      {
        tencVersion: 1,
        cryptByteBlock: 0,
        skipByteBlock: 0,
        perSampleIvSize: 0,
        subsamples: false,
        alignProtected: false,
      },
    ],
  ] as const)('%s %s', (scheme, kind, expected) => {
    expect(trackProtection(scheme, kind)).toEqual({ scheme, ...expected });
  });

  it('takes the IV size from --iv for the CTR schemes and refuses 8-byte IVs for CBC', () => {
    expect(ivSizeFor('cenc', 16)).toBe(16);
    expect(ivSizeFor('cens', 8)).toBe(8);
    expect(ivSizeFor('cbcs', 16)).toBe(0);
    expect(() => ivSizeFor('cbc1', 8)).toThrow(
      expect.objectContaining({ code: 'MEDIA_PACKAGE_BAD_IV' }),
    );
    expect(() => ivSizeFor('cbcs', 8)).toThrow(
      expect.objectContaining({ code: 'MEDIA_PACKAGE_BAD_IV' }),
    );
    expect(() => ivSizeFor('cenc', 12)).toThrow(
      expect.objectContaining({ code: 'MEDIA_PACKAGE_BAD_IV' }),
    );
  });
});
