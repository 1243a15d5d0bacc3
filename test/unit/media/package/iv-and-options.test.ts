import { describe, expect, it } from 'vitest';
import { IvSequence, batchIv } from '../../../../src/media/package/iv-sequence.js';
import { KeySchedule } from '../../../../src/media/package/key-schedule.js';
import {
  resolvePackageOptions,
  type PackageOptions,
} from '../../../../src/media/package/package-options.js';
import { offsetIv } from '../../../../src/media/package/packager.js';
import { trackProtection } from '../../../../src/media/package/scheme-policy.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
const key = (n: number): { kid: Uint8Array; key: Uint8Array } => ({
  kid: new Uint8Array(16).fill(n),
  key: new Uint8Array(16).fill(n + 100),
});

describe('IvSequence', () => {
  it('counts 8-byte IVs up by one per sample, wrapping at 64 bits', () => {
    const ivs = new IvSequence(trackProtection('cenc', 'video'), bytes('fffffffffffffffe'));
    expect([100, 5, 7].map((n) => hex(ivs.next(n)))).toEqual([
      'fffffffffffffffe',
      'ffffffffffffffff',
      '0000000000000000',
    ]);
  });

  it('counts 16-byte CTR IVs up by the sample size in blocks, so counter ranges never overlap', () => {
    const ivs = new IvSequence(
      trackProtection('cens', 'video', 16),
      bytes('000000000000000000000000000000f0'),
    );
    expect([hex(ivs.next(33)), hex(ivs.next(16)), hex(ivs.next(0))]).toEqual([
      '000000000000000000000000000000f0',
      '000000000000000000000000000000f3', // 33 bytes = 3 blocks
      '000000000000000000000000000000f4',
    ]);
  });

  it('uses one constant IV for cbcs and stores no per-sample IV', () => {
    const ivs = new IvSequence(
      trackProtection('cbcs', 'video'),
      bytes('00112233445566778899aabbccddeeff'),
    );
    expect(ivs.next(100).length).toBe(0);
    expect(hex(ivs.constantIv!)).toBe('00112233445566778899aabbccddeeff');
  });

  it('draws random cbc1 IVs per sample unless --iv fixes the start', () => {
    let n = 0;
    const random = (size: number): Uint8Array => new Uint8Array(size).fill(++n);
    const ivs = new IvSequence(trackProtection('cbc1', 'video'), undefined, random);
    expect(new Set([hex(ivs.next(1)), hex(ivs.next(1)), hex(ivs.next(1))]).size).toBe(3);
    const fixed = new IvSequence(
      trackProtection('cbc1', 'video', 16),
      bytes('000000000000000000000000000000ff'),
    );
    expect([hex(fixed.next(64)), hex(fixed.next(64))]).toEqual([
      '000000000000000000000000000000ff',
      '00000000000000000000000000000100',
    ]);
  });

  it('starts at random without --iv', () => {
    const a = new IvSequence(trackProtection('cenc', 'audio'), undefined);
    const b = new IvSequence(trackProtection('cenc', 'audio'), undefined);
    expect(hex(a.next(1))).not.toBe(hex(b.next(1)));
  });

  it('pads 8-byte IVs to the 16 bytes a batch wants, and fills in the constant IV', () => {
    expect(hex(batchIv(bytes('0102030405060708'), undefined))).toBe(
      '01020304050607080000000000000000',
    );
    expect(hex(batchIv(new Uint8Array(0), bytes('ffeeddccbbaa99887766554433221100')))).toBe(
      'ffeeddccbbaa99887766554433221100',
    );
  });

  it('separates the --iv of each track by its first byte, except the cbcs constant IV', () => {
    expect(hex(offsetIv(bytes('ff00000000000001'), 1, false))).toBe('0000000000000001');
    expect(hex(offsetIv(bytes('0100000000000001'), 2, false))).toBe('0300000000000001');
    expect(hex(offsetIv(bytes('0100000000000001'), 2, true))).toBe('0100000000000001');
  });
});

describe('KeySchedule', () => {
  it('uses the default key without rotation', () => {
    const s = new KeySchedule(key(1));
    expect([0, 1, 99].map((i) => s.keyFor(i).rotated)).toEqual([false, false, false]);
  });

  it('rotates every N fragments through the default and rotation keys, cycling', () => {
    const s = new KeySchedule(key(1), [key(2), key(3)], 2);
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => s.keyFor(i).key.kid[0])).toEqual([1, 1, 2, 2, 3, 3, 1]);
    expect(s.keyFor(2).rotated).toBe(true);
    expect(s.keyFor(6).rotated).toBe(false);
  });
});

describe('resolvePackageOptions', () => {
  const base: PackageOptions = {
    input: '/tmp/in/movie.mp4',
    output: '/tmp/out.mp4',
    scheme: 'cenc',
    key: key(1),
  };
  const code = (opts: Partial<PackageOptions>): string | undefined => {
    try {
      resolvePackageOptions({ ...base, ...opts } as PackageOptions);
      return undefined;
    } catch (err) {
      return (err as { code?: string }).code;
    }
  };

  it('fills the defaults: 2 s fragments, content id from the input name', () => {
    expect(resolvePackageOptions(base)).toMatchObject({
      fragmentMs: 2000,
      rotateEvery: 1,
      contentId: 'movie',
      rotationKeys: [],
    });
  });

  it('refuses bad arguments with coded errors', () => {
    expect(code({ scheme: 'aes' as 'cenc' })).toBe('MEDIA_UNKNOWN_SCHEME');
    expect(code({ output: '/tmp/in/movie.mp4' })).toBe('CLI_USAGE');
    expect(code({ key: { kid: new Uint8Array(8), key: new Uint8Array(16) } })).toBe('CLI_BAD_KEY');
    expect(code({ rotationKeys: [{ kid: key(1).kid, key: key(5).key }] })).toBe('CLI_BAD_KEY'); // same KID, other key
    expect(code({ scheme: 'cbcs', iv: new Uint8Array(8) })).toBe('MEDIA_PACKAGE_BAD_IV');
    expect(code({ iv: new Uint8Array(12) })).toBe('MEDIA_PACKAGE_BAD_IV');
    expect(code({ fragmentMs: 0 })).toBe('CLI_USAGE');
    expect(code({ fragmentMs: 1.5 })).toBe('CLI_USAGE');
    expect(code({ rotateEvery: 0 })).toBe('CLI_USAGE');
  });

  it('accepts a KID repeated with the same key', () => {
    expect(code({ audioKey: key(1) })).toBeUndefined();
  });
});
