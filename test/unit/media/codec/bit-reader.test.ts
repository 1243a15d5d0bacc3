import { describe, expect, it } from 'vitest';
import { isKeywardenError } from '../../../../src/errors/index.js';
import {
  NalBitReader,
  ceilLog2,
  escapeRbsp,
  unescapeRbsp,
} from '../../../../src/media/codec/bit-reader.js';

/** Packs a string of '0'/'1' into bytes, padding the last one with zeros. */
function bits(s: string): Uint8Array {
  const clean = s.replace(/\s/g, '');
  const out = new Uint8Array(Math.ceil(clean.length / 8));
  for (let i = 0; i < clean.length; i++) if (clean[i] === '1') out[i >> 3]! |= 0x80 >> (i & 7);
  return out;
}

function reader(b: Uint8Array): NalBitReader {
  return new NalBitReader(b, 0, b.length, 'test');
}

function codeOf(err: unknown): string | undefined {
  return isKeywardenError(err) ? err.code : undefined;
}

describe('NalBitReader', () => {
  it('reads fixed-width fields across byte boundaries', () => {
    const r = reader(Uint8Array.from([0b10110011, 0b01011100, 0xff, 0xff, 0xff, 0xff]));
    expect(r.u(1)).toBe(1);
    expect(r.u(3)).toBe(0b011);
    expect(r.u(8)).toBe(0b00110101);
    expect(r.flag()).toBe(true);
    expect(r.u(3)).toBe(0b100);
    expect(r.u(32)).toBe(0xffffffff);
    expect(r.rawBitsRead).toBe(48);
    expect(r.byteAligned).toBe(true);
  });

  it('decodes the exp-Golomb table of H.264 §9.1', () => {
    // codewords for 0..8: 1, 010, 011, 00100, 00101, 00110, 00111, 0001000, 0001001
    const r = reader(bits('1 010 011 00100 00101 00110 00111 0001000 0001001'));
    expect(Array.from({ length: 9 }, () => r.ue())).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('maps se(v) as 0, 1, -1, 2, -2 (§9.1.1)', () => {
    const r = reader(bits('1 010 011 00100 00101'));
    expect(Array.from({ length: 5 }, () => r.se())).toEqual([0, 1, -1, 2, -2]);
  });

  it('reads a 32-bit exp-Golomb value and refuses a longer prefix', () => {
    const max = bits(`${'0'.repeat(31)}1${'1'.repeat(31)}`);
    expect(reader(max).ue()).toBe(2 ** 32 - 2);
    const tooLong = new Uint8Array(8); // 64 zero bits
    expect(() => reader(tooLong).ue()).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
  });

  it('drops emulation-prevention bytes but counts them in raw positions', () => {
    // RBSP 00 00 01 ff is escaped as 00 00 03 01 ff.
    const escaped = Uint8Array.from([0x00, 0x00, 0x03, 0x01, 0xff]);
    const r = reader(escaped);
    expect(r.u(24)).toBe(0x000001);
    expect(r.rawBitsRead).toBe(32); // four escaped bytes consumed for three RBSP bytes
    expect(r.u(8)).toBe(0xff);
    expect(r.atEnd).toBe(true);
  });

  it('drops consecutive emulation-prevention bytes', () => {
    // RBSP 00 00 00 00 00 → escaped 00 00 03 00 00 03 00
    const escaped = escapeRbsp(new Uint8Array(5));
    expect(Array.from(escaped)).toEqual([0, 0, 3, 0, 0, 3, 0]);
    const r = reader(escaped);
    expect(r.u(32)).toBe(0);
    expect(r.u(8)).toBe(0);
    expect(r.atEnd).toBe(true);
  });

  it('keeps a 03 byte that does not follow two zeros', () => {
    const r = reader(Uint8Array.from([0x00, 0x03, 0x00, 0x00, 0x03, 0x03]));
    expect(r.u(16)).toBe(0x0003);
    expect(r.u(16)).toBe(0x0000);
    expect(r.u(8)).toBe(0x03);
  });

  it('throws MEDIA_BITSTREAM at the end instead of reading past it', () => {
    const r = reader(Uint8Array.from([0xab]));
    r.u(8);
    let err: unknown;
    try {
      r.bit();
    } catch (e) {
      err = e;
    }
    expect(codeOf(err)).toBe('MEDIA_BITSTREAM');
    expect(() => reader(Uint8Array.from([0, 0, 3])).u(24)).toThrow(/emulation-prevention/);
    expect(() => reader(new Uint8Array(1)).u(33)).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
    expect(() => new NalBitReader(new Uint8Array(2), 1, 5)).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
  });

  it('bounds values with ueMax', () => {
    expect(reader(bits('00101')).ueMax(4, 'x')).toBe(4);
    expect(() => reader(bits('00110')).ueMax(4, 'x')).toThrow(/x = 5 exceeds 4/);
  });

  it('reads a window of a buffer only', () => {
    const buf = Uint8Array.from([0xff, 0b01000000, 0xff]);
    const r = new NalBitReader(buf, 1, 2);
    expect(r.ue()).toBe(1);
    expect(r.rawBitsRead).toBe(3);
  });
});

describe('RBSP escaping', () => {
  it('round-trips random payloads and leaves no start code emulation', () => {
    let seed = 7;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 4; // bytes 0..3 stress the rules
    for (let n = 0; n < 200; n++) {
      const rbsp = Uint8Array.from({ length: n }, rand);
      const escaped = escapeRbsp(rbsp);
      expect(Array.from(unescapeRbsp(escaped))).toEqual(Array.from(rbsp));
      const text = Buffer.from(escaped).toString('hex');
      for (const forbidden of ['000000', '000001', '000002']) {
        const at = text.indexOf(forbidden);
        expect(at < 0 || at % 2 === 1).toBe(true);
      }
    }
  });
});

describe('ceilLog2', () => {
  it('gives the width of u(v) indexes', () => {
    expect([1, 2, 3, 4, 5, 8, 9, 1024, 1025].map(ceilLog2)).toEqual([0, 1, 2, 2, 3, 3, 4, 10, 11]);
  });
});
