import { describe, expect, it } from 'vitest';
import { isKeywardenError } from '../../../src/errors/index.js';
import { parseBoxes, serializeBoxes, type Box } from '../../../src/media/box.js';
import * as boxes from '../../../src/media/boxes/index.js';
import { ByteWriter } from '../../../src/media/bytes.js';
import { PIFF_UUIDS } from '../../../src/media/cenc-types.js';
import { Rng } from '../../fuzz/mutator.js';

const KID = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

/** Parses one box written by `body` (a FullBox when version is given). */
function box(
  type: string,
  body: (w: ByteWriter) => void,
  version?: number,
  flags = 0,
  uuid?: string,
): Box {
  const w = new ByteWriter();
  const u = uuid ? Buffer.from(uuid, 'hex') : undefined;
  if (version === undefined) w.box(type, body, u);
  else w.fullBox(type, version, flags, body, u);
  return parseBoxes(w.toBuffer(), 0, undefined, { containers: new Set() })[0]!;
}

/** The code a parser throws, or 'ok'. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (!isKeywardenError(err)) throw err;
    return err.code;
  }
}

describe('tenc, schm, frma, sinf', () => {
  it('reads tenc v0 and v1 with a pattern and a constant IV', () => {
    const v0 = boxes.parseTrackEncryption(
      box('tenc', (w) => w.u8(0).u8(0).u8(1).u8(8).bytes(KID), 0),
    );
    expect(v0).toEqual({
      isProtected: 1,
      perSampleIvSize: 8,
      kid: KID,
      cryptByteBlock: 0,
      skipByteBlock: 0,
    });
    const iv = new Uint8Array(16).fill(9);
    const v1 = boxes.parseTrackEncryption(
      box('tenc', (w) => w.u8(0).u8(0x19).u8(1).u8(0).bytes(KID).u8(16).bytes(iv), 1),
    );
    expect(v1).toMatchObject({
      cryptByteBlock: 1,
      skipByteBlock: 9,
      perSampleIvSize: 0,
      constantIv: iv,
    });
  });

  it('rejects IV sizes other than 0, 8, 16 and truncated boxes', () => {
    expect(
      codeOf(() =>
        boxes.parseTrackEncryption(box('tenc', (w) => w.u8(0).u8(0).u8(1).u8(12).bytes(KID), 0)),
      ),
    ).toBe('MEDIA_BAD_IV');
    expect(
      codeOf(() =>
        boxes.parseTrackEncryption(
          box('tenc', (w) => w.u8(0).u8(0).u8(1).u8(0).bytes(KID).u8(7), 1),
        ),
      ),
    ).toBe('MEDIA_BAD_IV');
    expect(
      codeOf(() =>
        boxes.parseTrackEncryption(
          box('tenc', (w) => w.u8(0).u8(0).u8(1).u8(8).bytes(KID.subarray(0, 9)), 0),
        ),
      ),
    ).toBe('MEDIA_TRUNCATED');
  });

  it('reads the PIFF track encryption box', () => {
    const b = box('uuid', (w) => w.u24(2).u8(16).bytes(KID), 0, 0, PIFF_UUIDS.trackEncryption);
    expect(boxes.parsePiffTrackEncryption(b)).toMatchObject({
      algorithm: 2,
      trackEncryption: { perSampleIvSize: 16, isProtected: 1 },
    });
  });

  it('a sinf without frma is MEDIA_MISSING_BOX', () => {
    const sinf = parseBoxes(
      new ByteWriter()
        .box('sinf', (w) => w.fullBox('schm', 0, 0, (s) => s.fourcc('cenc').u32(0x10000)))
        .toBuffer(),
    )[0]!;
    expect(codeOf(() => boxes.parseProtectionSchemeInfo(sinf))).toBe('MEDIA_MISSING_BOX');
  });
});

describe('pssh', () => {
  it('reads v0, v1 and PIFF pssh', () => {
    const sys = new Uint8Array(16).fill(0xaa);
    const v1 = boxes.parseProtectionSystemHeader(
      box(
        'pssh',
        (w) =>
          w
            .bytes(sys)
            .u32(2)
            .bytes(KID)
            .bytes(KID)
            .u32(3)
            .bytes(Uint8Array.of(1, 2, 3)),
        1,
      ),
    );
    expect(v1).toMatchObject({
      version: 1,
      kids: [KID, KID],
      data: Uint8Array.of(1, 2, 3),
      piff: false,
    });
    const piff = boxes.parseProtectionSystemHeader(
      box('uuid', (w) => w.bytes(sys).u32(1).u8(7), 0, 0, PIFF_UUIDS.protectionSystem),
    );
    expect(piff).toMatchObject({ piff: true, data: Uint8Array.of(7), kids: [] });
  });

  it('KID counts and data sizes beyond the box are MEDIA_TRUNCATED', () => {
    const sys = new Uint8Array(16);
    expect(
      codeOf(() =>
        boxes.parseProtectionSystemHeader(
          box('pssh', (w) => w.bytes(sys).u32(0x10000000).bytes(KID), 1),
        ),
      ),
    ).toBe('MEDIA_TRUNCATED');
    expect(
      codeOf(() =>
        boxes.parseProtectionSystemHeader(box('pssh', (w) => w.bytes(sys).u32(0xffffffff), 0)),
      ),
    ).toBe('MEDIA_TRUNCATED');
  });
});

describe('fragment boxes', () => {
  it('reads tfhd optional fields by flag', () => {
    const h = boxes.parseTrackFragmentHeader(
      box('tfhd', (w) => w.u32(3).u64(1000).u32(2).u32(512), 0, 0x1 | 0x2 | 0x8 | 0x20000),
    );
    expect(h).toMatchObject({
      trackId: 3,
      baseDataOffset: 1000,
      sampleDescriptionIndex: 2,
      defaultSampleDuration: 512,
      defaultSampleSize: undefined,
    });
  });

  it('reads trun tables with signed v1 composition offsets', () => {
    const run = boxes.parseTrackRun(
      box(
        'trun',
        (w) => w.u32(2).i32(-8).u32(100).u32(10).i32(-5).u32(200).u32(20).i32(7),
        1,
        0x1 | 0x100 | 0x200 | 0x800,
      ),
    );
    expect(run.dataOffset).toBe(-8);
    expect([...run.durations!]).toEqual([100, 200]);
    expect([...run.sizes!]).toEqual([10, 20]);
    expect([...run.compositionOffsets!]).toEqual([-5, 7]);
  });

  it('huge sample counts: a table that cannot fit, or no table at all', () => {
    expect(
      codeOf(() => boxes.parseTrackRun(box('trun', (w) => w.u32(0xffffffff).u32(1), 0, 0x200))),
    ).toBe('MEDIA_TRUNCATED');
    expect(codeOf(() => boxes.parseTrackRun(box('trun', (w) => w.u32(0xffffffff), 0, 0)))).toBe(
      'MEDIA_TOO_LARGE',
    );
  });

  it('patches data_offset and base_data_offset in copies', () => {
    const trun = box('trun', (w) => w.u32(0).i32(40), 0, 1);
    expect(
      boxes.parseTrackRun({ ...trun, payload: boxes.withRunDataOffset(trun, -4) }).dataOffset,
    ).toBe(-4);
    const tfhd = box('tfhd', (w) => w.u32(1).u64(77), 0, 1);
    expect(
      boxes.parseTrackFragmentHeader({ ...tfhd, payload: boxes.withBaseDataOffset(tfhd, 99) })
        .baseDataOffset,
    ).toBe(99);
    expect(boxes.parseTrackRun(trun).dataOffset).toBe(40);
  });
});

describe('sample tables', () => {
  it('reads stsz, stz2 (4, 8, 16 bits), stsc, stco, co64, stts, ctts, stss', () => {
    expect(
      boxes.parseSampleSizes(box('stsz', (w) => w.u32(0).u32(2).u32(5).u32(6), 0)).sizes,
    ).toEqual(Uint32Array.of(5, 6));
    expect(boxes.parseSampleSizes(box('stsz', (w) => w.u32(9).u32(1000), 0))).toEqual({
      count: 1000,
      uniformSize: 9,
    });
    expect([
      ...boxes.parseCompactSampleSizes(
        box('stz2', (w) => w.u24(0).u8(4).u32(3).u8(0x12).u8(0x30), 0),
      ).sizes!,
    ]).toEqual([1, 2, 3]);
    expect([
      ...boxes.parseCompactSampleSizes(box('stz2', (w) => w.u24(0).u8(16).u32(1).u16(700), 0))
        .sizes!,
    ]).toEqual([700]);
    expect([
      ...boxes.parseSampleToChunk(box('stsc', (w) => w.u32(1).u32(1).u32(4).u32(1), 0)),
    ]).toEqual([1, 4, 1]);
    expect([...boxes.parseChunkOffsets(box('co64', (w) => w.u32(1).u64(2 ** 40), 0))]).toEqual([
      2 ** 40,
    ]);
    expect([...boxes.parseTimeToSample(box('stts', (w) => w.u32(1).u32(3).u32(1024), 0))]).toEqual([
      3, 1024,
    ]);
    expect([
      ...boxes.parseCompositionOffsets(box('ctts', (w) => w.u32(1).u32(2).i32(-512), 1)).offsets,
    ]).toEqual([-512]);
    expect([...boxes.parseSyncSamples(box('stss', (w) => w.u32(2).u32(1).u32(26), 0))]).toEqual([
      1, 26,
    ]);
  });

  it('entry counts beyond the box are refused before allocating', () => {
    for (const type of ['stts', 'stsc', 'stco', 'co64', 'stss', 'ctts']) {
      const b = box(type, (w) => w.u32(0x40000000).u32(1), 0);
      const parse = {
        stts: boxes.parseTimeToSample,
        stsc: boxes.parseSampleToChunk,
        stco: boxes.parseChunkOffsets,
        co64: boxes.parseChunkOffsets,
        stss: boxes.parseSyncSamples,
        ctts: boxes.parseCompositionOffsets,
      }[type]!;
      expect(
        codeOf(() => parse(b)),
        type,
      ).toBe('MEDIA_TRUNCATED');
    }
    expect(
      codeOf(() => boxes.parseSampleSizes(box('stsz', (w) => w.u32(0).u32(0xffffffff), 0))),
    ).toBe('MEDIA_TRUNCATED');
    expect(
      codeOf(() => boxes.parseCompactSampleSizes(box('stz2', (w) => w.u24(0).u8(5).u32(1), 0))),
    ).toBe('MEDIA_MALFORMED_BOX');
  });
});

describe('senc, saiz, saio', () => {
  const iv8 = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);

  it('reads entries with and without subsamples; 8-byte IVs are zero-padded', () => {
    const full = boxes.parseSampleEncryption(
      box('senc', (w) => w.u32(2).bytes(iv8).bytes(iv8), 0, 0),
      () => 8,
    );
    expect(full.table.count).toBe(2);
    expect([...full.table.ivs.subarray(0, 16)]).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    const sub = boxes.parseSampleEncryption(
      box('senc', (w) => w.u32(1).bytes(iv8).u16(2).u16(5).u32(32).u16(3).u32(16), 0, 2),
      () => 8,
    );
    expect(boxes.sampleEncryptionInfo(sub.table, 0).subsamples).toEqual([
      { clear: 5, protected: 32 },
      { clear: 3, protected: 16 },
    ]);
  });

  it('constant-IV entries are subsample maps only; a wrong IV size leaves bytes over', () => {
    const cbcs = boxes.parseSampleEncryption(
      box('senc', (w) => w.u32(1).u16(1).u16(4).u32(64), 0, 2),
      () => 0,
    );
    expect(cbcs.table.ivSizes[0]).toBe(0);
    expect(
      codeOf(() =>
        boxes.parseSampleEncryption(
          box('senc', (w) => w.u32(1).bytes(iv8).bytes(iv8), 0, 0),
          () => 8,
        ),
      ),
    ).toBe('MEDIA_MALFORMED_BOX');
    expect(boxes.guessSencIvSize(box('senc', (w) => w.u32(2).bytes(iv8).bytes(iv8), 0, 0))).toBe(8);
  });

  it('reads the PIFF override, and refuses counts that cannot fit', () => {
    const piff = boxes.parseSampleEncryption(
      box(
        'uuid',
        (w) => w.u24(1).u8(8).bytes(KID).u32(1).bytes(iv8),
        0,
        1,
        PIFF_UUIDS.sampleEncryption,
      ),
      () => 16,
    );
    expect(piff.piffOverride).toEqual({ algorithm: 1, ivSize: 8, kid: KID });
    expect(
      codeOf(() =>
        boxes.parseSampleEncryption(
          box('senc', (w) => w.u32(0xffffffff), 0, 2),
          () => 8,
        ),
      ),
    ).toBe('MEDIA_TRUNCATED');
    expect(
      codeOf(() =>
        boxes.parseSampleEncryption(
          box('senc', (w) => w.u32(0xffffffff), 0, 0),
          () => 0,
        ),
      ),
    ).toBe('MEDIA_TOO_LARGE');
    expect(
      codeOf(() =>
        boxes.parseSampleEncryption(
          box('senc', (w) => w.u32(1).bytes(iv8).u16(0xffff), 0, 2),
          () => 8,
        ),
      ),
    ).toBe('MEDIA_TRUNCATED');
    expect(
      codeOf(() =>
        boxes.parseSampleEncryption(
          box('senc', (w) => w.u32(1).bytes(iv8), 0, 0),
          () => 8,
          5,
        ),
      ),
    ).toBe('MEDIA_MALFORMED_BOX');
  });

  it('reads saiz and saio (v0, v1, typed)', () => {
    expect(
      boxes.parseAuxInfoSizes(
        box(
          'saiz',
          (w) =>
            w
              .u8(0)
              .u32(3)
              .bytes(Uint8Array.of(8, 16, 22)),
          0,
        ),
      ),
    ).toMatchObject({ defaultSize: 0, sampleCount: 3 });
    expect(
      boxes.parseAuxInfoSizes(box('saiz', (w) => w.fourcc('cenc').u32(0).u8(8).u32(90), 0, 1)),
    ).toMatchObject({ auxInfoType: 'cenc', defaultSize: 8, sampleCount: 90 });
    expect(boxes.parseAuxInfoOffsets(box('saio', (w) => w.u32(1).u64(2 ** 33), 1)).offsets).toEqual(
      [2 ** 33],
    );
    expect(codeOf(() => boxes.parseAuxInfoSizes(box('saiz', (w) => w.u8(0).u32(1000), 0)))).toBe(
      'MEDIA_TRUNCATED',
    );
  });
});

describe('sample groups and sidx', () => {
  const seig = (w: ByteWriter): ByteWriter =>
    w.u8(0).u8(0x19).u8(1).u8(0).bytes(KID).u8(8).bytes(new Uint8Array(8).fill(3));

  it('reads sgpd v1 (default length 0), v2 and v0 seig entries', () => {
    for (const version of [0, 1, 2]) {
      const b = box(
        'sgpd',
        (w) => {
          w.fourcc('seig');
          if (version === 1) w.u32(0);
          if (version === 2) w.u32(1);
          w.u32(1);
          if (version === 1) w.u32(29);
          seig(w);
        },
        version,
      );
      const g = boxes.parseSampleGroupDescription(b);
      expect(boxes.parseSeigEntry(g.entries[0]!)).toMatchObject({
        cryptByteBlock: 1,
        skipByteBlock: 9,
        constantIv: new Uint8Array(8).fill(3),
      });
    }
  });

  it('expands sbgp runs and reads sbgp v1', () => {
    const sbgp = boxes.parseSampleToGroup(
      box('sbgp', (w) => w.fourcc('seig').u32(0).u32(2).u32(2).u32(0x10001).u32(9).u32(1), 1),
    );
    expect([...boxes.groupIndexPerSample(sbgp, 4)]).toEqual([0x10001, 0x10001, 1, 1]);
    expect(
      codeOf(() =>
        boxes.parseSampleToGroup(box('sbgp', (w) => w.fourcc('seig').u32(0x10000000), 0)),
      ),
    ).toBe('MEDIA_TRUNCATED');
  });

  it('parses sidx and patches sizes in place', () => {
    const b = box(
      'sidx',
      (w) =>
        w
          .u32(1)
          .u32(90000)
          .u32(0)
          .u32(0)
          .u16(0)
          .u16(2)
          .u32(1000)
          .u32(90)
          .u32(0x90000000)
          .u32(2000)
          .u32(90)
          .u32(0x90000000),
      0,
    );
    const sidx = boxes.parseSegmentIndex(b);
    expect(sidx.references.map((r) => r.referencedSize)).toEqual([1000, 2000]);
    const patched = boxes.parseSegmentIndex({
      ...b,
      payload: boxes.patchSegmentIndex(b, sidx, 12, [900, 1900]),
    });
    expect(patched.firstOffset).toBe(12);
    expect(patched.references.map((r) => [r.referencedSize, r.startsWithSap])).toEqual([
      [900, true],
      [1900, true],
    ]);
    expect(codeOf(() => boxes.patchSegmentIndex(b, sidx, 0, [2 ** 31, 0]))).toBe('MEDIA_TOO_LARGE');
  });
});

describe('sample entries', () => {
  const visual = (w: ByteWriter): void => {
    w.zeros(6)
      .u16(1)
      .zeros(16)
      .u16(320)
      .u16(240)
      .u32(0x480000)
      .u32(0x480000)
      .u32(0)
      .u16(1)
      .zeros(32)
      .u16(24)
      .u16(0xffff);
    w.box('avcC', (c) => c.u8(1).u8(0x64).u8(0).u8(0x1f).u8(0xff));
  };

  it('reads visual and audio entries (QuickTime v1/v2 too) and rewrites them losslessly', () => {
    const avc1 = boxes.parseSampleEntry(box('avc1', visual), 'vide');
    expect(avc1).toMatchObject({
      layout: 'visual',
      width: 320,
      height: 240,
      dataReferenceIndex: 1,
    });
    expect(avc1.children.map((c) => c.type)).toEqual(['avcC']);
    expect(serializeBoxes([boxes.sampleEntryBox('avc1', avc1, avc1.children)])).toEqual(
      serializeBoxes([avc1.box]),
    );
    for (const [qt, extra] of [
      [0, 0],
      [1, 16],
      [2, 36],
    ] as const) {
      const b = box('mp4a', (w) => {
        w.zeros(6)
          .u16(1)
          .u16(qt)
          .zeros(6)
          .u16(2)
          .u16(16)
          .u32(0)
          .u32(48000 * 65536)
          .zeros(extra);
        w.box('esds', (e) => e.u32(0));
      });
      const e = boxes.parseSampleEntry(b, 'soun', 0);
      expect(e.channelCount).toBe(2);
      expect(e.children.map((c) => c.type)).toEqual(['esds']);
    }
  });

  it('keeps unknown generic entries verbatim, and counts entries in stsd', () => {
    const tx3g = boxes.parseSampleEntry(
      box('tx3g', (w) => w.zeros(6).u16(1).u32(0x01020304).u32(5)),
      'text',
    );
    expect(tx3g.children).toEqual([]);
    expect(tx3g.opaque?.length).toBe(8);
    const stsd = box('stsd', (w) => w.u32(2).box('avc1', visual), 0);
    expect(codeOf(() => boxes.parseSampleDescriptions(stsd, 'vide'))).toBe('MEDIA_MALFORMED_BOX');
  });
});

describe('every parser on random bytes', () => {
  const parsers: [string, (b: Box) => unknown][] = [
    ['tenc', boxes.parseTrackEncryption],
    ['pssh', boxes.parseProtectionSystemHeader],
    ['trun', boxes.parseTrackRun],
    ['tfhd', boxes.parseTrackFragmentHeader],
    ['stsz', boxes.parseSampleSizes],
    ['stz2', boxes.parseCompactSampleSizes],
    ['stsc', boxes.parseSampleToChunk],
    ['co64', boxes.parseChunkOffsets],
    ['ctts', boxes.parseCompositionOffsets],
    ['saiz', boxes.parseAuxInfoSizes],
    ['saio', boxes.parseAuxInfoOffsets],
    ['sbgp', boxes.parseSampleToGroup],
    ['sgpd', boxes.parseSampleGroupDescription],
    ['sidx', boxes.parseSegmentIndex],
    ['mvhd', boxes.parseMovieHeader],
    ['tkhd', boxes.parseTrackHeader],
    ['mdhd', boxes.parseMediaHeader],
    ['hdlr', boxes.parseHandler],
    ['stsd', (b) => boxes.parseSampleDescriptions(b, 'vide')],
    ['senc', (b) => boxes.parseSampleEncryption(b, () => 8)],
    ['avc1', (b) => boxes.parseSampleEntry(b, 'vide')],
    ['mp4a', (b) => boxes.parseSampleEntry(b, 'soun')],
  ];
  for (const [type, parse] of parsers) {
    it(`${type}: only coded errors`, () => {
      const rng = new Rng(type.charCodeAt(0) * 977 + type.charCodeAt(3));
      for (let i = 0; i < 500; i++) {
        const body = Uint8Array.from({ length: rng.int(96) }, () =>
          rng.next() < 0.3 ? rng.int(4) : rng.int(256),
        );
        const b = box(type, (w) => w.bytes(body));
        expect(() => {
          try {
            parse(b);
          } catch (err) {
            if (!isKeywardenError(err)) throw err;
          }
        }).not.toThrow();
      }
    });
  }
});
