import { describe, expect, it } from 'vitest';
import { parseBoxes } from '../../../src/media/box.js';
import { parseSampleEntry } from '../../../src/media/boxes/index.js';
import { ByteWriter } from '../../../src/media/bytes.js';
import {
  checkForEntry,
  wasEncrypted,
  type EncryptedMap,
} from '../../../src/media/decrypt/key-check.js';
import { OutputLayout, type LayoutEntry } from '../../../src/media/decrypt/layout.js';
import { BufferSink, BufferSource } from '../../../src/media/stream/byte-source.js';
import { ChunkPool, copyRegion, planChunks } from '../../../src/media/stream/region-copier.js';

const map = (over: Partial<EncryptedMap>): EncryptedMap => ({
  scheme: 'cenc',
  cryptByteBlock: 0,
  skipByteBlock: 0,
  subsamples: new Uint32Array(0),
  subStart: 0,
  subCount: 0,
  ...over,
});

describe('wasEncrypted (ISO/IEC 23001-7 §9)', () => {
  it('cenc: every protected byte; clear subsample bytes are clear', () => {
    const m = map({ subsamples: Uint32Array.of(5, 20, 3, 0), subCount: 2 });
    expect([0, 4, 5, 24, 25, 27].map((p) => wasEncrypted(m, 28, p))).toEqual([
      false,
      false,
      true,
      true,
      false,
      false,
    ]);
  });

  it('cbcs 1:9: the first block of each ten; a trailing partial block is clear', () => {
    const m = map({ scheme: 'cbcs', cryptByteBlock: 1, skipByteBlock: 9 });
    expect([0, 15, 16, 159, 160, 175, 180].map((p) => wasEncrypted(m, 181, p))).toEqual([
      true,
      true,
      false,
      false,
      true,
      true,
      false,
    ]);
  });

  it('cbc1: whole blocks only', () => {
    expect(wasEncrypted(map({ scheme: 'cbc1' }), 40, 31)).toBe(true);
    expect(wasEncrypted(map({ scheme: 'cbc1' }), 40, 32)).toBe(false);
  });
});

describe('wrong-key checks', () => {
  const avc1 = (): ReturnType<typeof parseSampleEntry> => {
    const w = new ByteWriter().box('avc1', (e) =>
      e
        .zeros(6)
        .u16(1)
        .zeros(70)
        .box('avcC', (c) => c.u8(1).u8(0x64).u8(0).u8(0x1f).u8(0xff)),
    );
    return parseSampleEntry(parseBoxes(w.toBuffer())[0]!, 'vide');
  };
  const nal = (len: number, fill: number, last = 0x80): number[] => [
    0,
    0,
    0,
    len,
    0x65,
    ...Array<number>(len - 2).fill(fill),
    last,
  ];

  it('H.264: a sample whose NAL lengths walk exactly passes; one that does not fails when the prefix was encrypted', () => {
    const check = checkForEntry(avc1(), 'avc1')!;
    const good = Uint8Array.from([...nal(10, 1), ...nal(6, 2)]);
    expect(check(good, map({}))).toBe(false);
    const noise = Uint8Array.from([0x7f, 0x11, 0x22, 0x33, ...good.subarray(4)]);
    expect(check(noise, map({}))).toBe(true);
    // The same noise in a clear prefix is not evidence of a wrong key.
    expect(check(noise, map({ subsamples: Uint32Array.of(5, good.length - 5), subCount: 1 }))).toBe(
      false,
    );
  });

  it('H.264: a NAL unit ending in 0x00 inside encrypted bytes fails; forbidden_zero_bit set fails', () => {
    const check = checkForEntry(avc1(), 'avc1')!;
    expect(check(Uint8Array.from(nal(10, 1, 0)), map({}))).toBe(true);
    expect(check(Uint8Array.from([0, 0, 0, 3, 0xe5, 1, 0x80]), map({}))).toBe(true);
  });

  it('no check for codecs without a reliable one', () => {
    expect(checkForEntry(avc1(), 'vp09')).toBeUndefined();
  });
});

describe('OutputLayout', () => {
  const header = (type: string, offset: number, size: number) => ({
    type,
    offset,
    size,
    headerSize: 8,
  });
  const entries = (): LayoutEntry[] => [
    {
      source: 0,
      header: header('ftyp', 0, 20),
      action: 'copy',
      outSize: 20,
      outOffset: 0,
      index: 0,
    },
    {
      source: 0,
      header: header('moof', 20, 100),
      action: 'fragment',
      outSize: 60,
      outOffset: 0,
      index: 1,
    },
    {
      source: 0,
      header: header('mdat', 120, 1000),
      action: 'media',
      outSize: 1000,
      outOffset: 0,
      index: 2,
    },
    {
      source: 0,
      header: header('mfra', 1120, 50),
      action: 'drop',
      outSize: 0,
      outOffset: 0,
      index: 3,
    },
  ];

  it('maps positions inside copied boxes, box starts and the source end; nothing inside rewritten boxes', () => {
    const l = new OutputLayout(entries());
    expect(l.outputSize).toBe(1080);
    expect(l.map(0, 20)).toBe(20);
    expect(l.map(0, 50)).toBeUndefined();
    expect(l.map(0, 128)).toBe(88);
    expect(l.map(0, 1120)).toBe(1080);
    expect(l.map(0, 1170)).toBe(1080);
    expect(l.mediaHolding(0, 128, 10)?.index).toBe(2);
    expect(l.mediaHolding(0, 120, 10)).toBeUndefined();
    expect(() => l.mapOrThrow(0, 50, 'x')).toThrow(
      expect.objectContaining({ code: 'MEDIA_SAMPLE_OUT_OF_RANGE' }),
    );
  });
});

describe('copyRegion', () => {
  it('never splits a span; a span larger than a chunk gets its own chunk', () => {
    const chunks = planChunks(
      0,
      100,
      [
        { offset: 5, size: 10 },
        { offset: 28, size: 40 },
        { offset: 90, size: 5 },
      ],
      20,
    );
    expect(chunks.map((c) => [c.start, c.end, c.first, c.last])).toEqual([
      [0, 20, 0, 1],
      [20, 28, 1, 1],
      [28, 68, 1, 2],
      [68, 88, 2, 2],
      [88, 100, 2, 3],
    ]);
  });

  it('copies through the transform into the right output positions', async () => {
    const input = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    const sink = new BufferSink();
    const spans = [
      { offset: 100, size: 50 },
      { offset: 700, size: 200 },
    ];
    await copyRegion({
      src: new BufferSource(input),
      sink,
      start: 50,
      end: 1000,
      outStart: 10,
      spans,
      pool: new ChunkPool(64),
      transform: (buf, c) => {
        for (const s of spans.slice(c.first, c.last))
          buf.fill(0xee, s.offset - c.start, s.offset - c.start + s.size);
        return Promise.resolve();
      },
    });
    const out = sink.toBuffer();
    expect(out.length).toBe(960);
    expect(out[10]).toBe(50);
    expect(out.subarray(60, 110).every((b) => b === 0xee)).toBe(true);
    expect(out[110]).toBe(150 & 0xff);
    expect(out.subarray(660, 860).every((b) => b === 0xee)).toBe(true);
  });

  it('a failed read rejects without an unhandled rejection', async () => {
    const src = new BufferSource(new Uint8Array(100));
    await expect(
      copyRegion({
        src,
        sink: new BufferSink(),
        start: 0,
        end: 200,
        outStart: 0,
        spans: [],
        pool: new ChunkPool(16),
      }),
    ).rejects.toMatchObject({ code: 'MEDIA_TRUNCATED' });
  });
});
