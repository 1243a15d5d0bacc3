import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAvcConfig, parseHevcConfig } from '../../../../src/media/codec/decoder-config.js';
import { esdsObjectType, isAacEsds } from '../../../../src/media/codec/esds.js';
import { splitNalUnits } from '../../../../src/media/codec/nal-units.js';
import {
  createSliceHeaderParser,
  type NalCodec,
} from '../../../../src/media/codec/slice-header-parser.js';
import { parseFile } from '../../../../src/media/movie.js';
import { hasFfmpeg, makeClip } from '../../../helpers/ffmpeg.js';
import { readClipVideo } from './clip-bitstream.js';

/** The error codes a codec parser may throw on bad input; anything else is a bug. */
const ALLOWED = new Set([
  'MEDIA_BITSTREAM',
  'MEDIA_UNSUPPORTED_CODEC',
  'MEDIA_TRUNCATED',
  'MEDIA_MALFORMED_BOX',
]);

function expectCodedOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(ALLOWED.has((err as { code?: string }).code ?? ''), String(err)).toBe(true);
  }
}

let seed = 1234;
const rand = (n: number): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};

describe('splitNalUnits', () => {
  it('splits 1-, 2- and 4-byte length prefixes', () => {
    expect(splitNalUnits(Uint8Array.of(2, 9, 9, 1, 7), 1)).toEqual([
      { offset: 0, start: 1, end: 3 },
      { offset: 3, start: 4, end: 5 },
    ]);
    expect(splitNalUnits(Uint8Array.of(0, 1, 5), 2)).toEqual([{ offset: 0, start: 2, end: 3 }]);
    expect(splitNalUnits(Uint8Array.of(0, 0, 0, 0), 4)).toEqual([{ offset: 0, start: 4, end: 4 }]);
  });

  it('refuses overruns, trailing scraps and bad length sizes', () => {
    expect(() => splitNalUnits(Uint8Array.of(0, 0, 0, 9, 1), 4)).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
    expect(() => splitNalUnits(Uint8Array.of(1, 5, 2), 1)).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
    expect(() => splitNalUnits(Uint8Array.of(0, 0, 1), 4)).toThrow(/cannot hold a NAL length/);
    expect(() => splitNalUnits(new Uint8Array(4), 3)).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
  });
});

describe('esds', () => {
  // ES_Descriptor (tag 3) → DecoderConfigDescriptor (tag 4) with objectTypeIndication 0x40
  const aac = Uint8Array.of(
    0,
    0,
    0,
    0,
    0x03,
    0x19,
    0x00,
    0x01,
    0x00,
    0x04,
    0x11,
    0x40,
    0x15,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
  );
  it('finds the objectTypeIndication (AAC is 0x40)', () => {
    expect(esdsObjectType(aac)).toBe(0x40);
    expect(isAacEsds(aac)).toBe(true);
    const mp3 = Uint8Array.from(aac);
    mp3[11] = 0x6b;
    expect(isAacEsds(mp3)).toBe(false);
  });

  it('accepts multi-byte descriptor sizes and the optional ES_Descriptor fields', () => {
    const long = Uint8Array.of(
      0,
      0,
      0,
      0,
      0x03,
      0x80,
      0x80,
      0x19,
      0x00,
      0x01,
      0xe0,
      0x00,
      0x02,
      0x01,
      0x41,
      0x00,
      0x03,
      0x04,
      0x80,
      0x11,
      0x67,
    );
    expect(esdsObjectType(long)).toBe(0x67);
  });

  it('refuses truncations with coded errors', () => {
    for (let n = 0; n < aac.length - 12; n++)
      expectCodedOrOk(() => esdsObjectType(aac.subarray(0, n)));
    expect(() => esdsObjectType(Uint8Array.of(0, 0, 0, 0, 0x05, 0))).toThrow(
      expect.objectContaining({ code: 'MEDIA_MALFORMED_BOX' }),
    );
  });
});

describe.skipIf(!hasFfmpeg())('codec parsers on damaged real bitstreams', () => {
  const cases: Array<[NalCodec, 'h264' | 'h265']> = [
    ['h264', 'h264'],
    ['h265', 'h265'],
  ];

  it.each(cases)(
    '%s decoder configuration: real record parses, every truncation is a coded error',
    async (codec, video) => {
      const v = readClipVideo(await makeClip({ video, seconds: 1 }));
      const parse = codec === 'h264' ? parseAvcConfig : parseHevcConfig;
      const config = parse(v.config);
      expect(config.nalLengthSize).toBe(4);
      expect(config.parameterSets.length).toBeGreaterThanOrEqual(codec === 'h264' ? 2 : 3); // x265 adds an SEI to hvcC
      for (let n = 0; n < v.config.length; n++)
        expectCodedOrOk(() => createSliceHeaderParser(codec, v.config.subarray(0, n)));
    },
  );

  it.each(cases)(
    '%s slices: truncated and mutated NAL units give coded errors or a size within the unit',
    async (codec, video) => {
      const v = readClipVideo(await makeClip({ video, seconds: 1 }));
      for (const sample of v.samples.slice(0, 8)) {
        for (const u of splitNalUnits(sample, 4)) {
          const nal = sample.subarray(u.start, u.end);
          for (let n = 0; n < Math.min(nal.length, 24); n++) {
            const parser = createSliceHeaderParser(codec, v.config);
            expectCodedOrOk(() => {
              const size = parser.clearHeaderBytes(nal.subarray(0, n));
              if (size !== undefined) expect(size).toBeLessThanOrEqual(n);
            });
          }
          for (let k = 0; k < 20; k++) {
            const bad = Uint8Array.from(nal.subarray(0, 32));
            bad[1 + rand(bad.length - 1)] = rand(256);
            const parser = createSliceHeaderParser(codec, v.config);
            expectCodedOrOk(() => {
              const size = parser.clearHeaderBytes(bad);
              if (size !== undefined) expect(size).toBeLessThanOrEqual(bad.length);
            });
          }
        }
      }
    },
  );

  it('finds AAC in a real esds', async () => {
    const buf = readFileSync(await makeClip({ audio: 'aac', seconds: 1 }));
    const entry = parseFile(buf).movie!.tracks[0]!.descriptions.entries[0]!;
    expect(isAacEsds(entry.children.find((c) => c.type === 'esds')!.payload)).toBe(true);
  });
});
