import { describe, expect, it } from 'vitest';
import { findChild, parseBoxes, type Box } from '../../../../src/media/box.js';
import {
  parseAuxInfoOffsets,
  parseAuxInfoSizes,
  parseProtectionSchemeInfo,
  parseProtectionSystemHeader,
  parseSampleEncryption,
  parseSampleGroupDescription,
  parseSampleToGroup,
  parseSegmentIndex,
  parseSeigEntry,
  parseTrackEncryption,
  sampleEncryptionInfo,
} from '../../../../src/media/boxes/index.js';
import { ByteWriter, fromUuid } from '../../../../src/media/bytes.js';
import {
  SYSTEM_IDS,
  type SampleEncryptionInfo,
  type TrackEncryption,
} from '../../../../src/media/cenc-types.js';
import { decodePsshData, encodePsshData } from '../../../../src/media/pssh-data.js';
import {
  sinfBox,
  writePssh,
  writeSaio,
  writeSaiz,
  writeSampleToGroup,
  writeSeigDescriptions,
  writeSenc,
  writeTenc,
} from '../../../../src/media/package/cenc-boxes.js';
import {
  writeSegmentIndex,
  segmentIndexSize,
} from '../../../../src/media/package/segment-index.js';
import { serializeBoxes } from '../../../../src/media/box.js';

const KID = Uint8Array.from(Buffer.from('00112233445566778899aabbccddeeff', 'hex'));
const KID2 = Uint8Array.from(Buffer.from('ffeeddccbbaa99887766554433221100', 'hex'));
const IV16 = Uint8Array.from(Buffer.from('0f0e0d0c0b0a09080706050403020100', 'hex'));

/** Parses what `write` wrote as one box (containers parsed). */
function written(write: (w: ByteWriter) => void): Box {
  const w = new ByteWriter(64);
  write(w);
  const [box] = parseBoxes(w.toBuffer());
  if (!box) throw new Error('nothing written');
  return box;
}

const defaults = (over: Partial<TrackEncryption> = {}): TrackEncryption => ({
  isProtected: 1,
  perSampleIvSize: 8,
  kid: KID,
  cryptByteBlock: 0,
  skipByteBlock: 0,
  ...over,
});

describe('tenc', () => {
  it('round-trips version 0 (cenc, cbc1)', () => {
    const box = written((w) => writeTenc(w, defaults(), 0));
    expect(box.size).toBe(32);
    expect(parseTrackEncryption(box)).toEqual(defaults());
  });

  it('round-trips version 1 with a pattern and a constant IV (cbcs)', () => {
    const te = defaults({
      perSampleIvSize: 0,
      cryptByteBlock: 1,
      skipByteBlock: 9,
      constantIv: IV16,
    });
    const box = written((w) => writeTenc(w, te, 1));
    expect(box.size).toBe(32 + 17);
    expect(parseTrackEncryption(box)).toEqual(te);
  });

  it('writes the pattern byte as reserved zero in version 0', () => {
    const box = written((w) => writeTenc(w, defaults({ cryptByteBlock: 1, skipByteBlock: 9 }), 0));
    expect(box.payload[5]).toBe(0);
  });
});

describe('sinf', () => {
  it('round-trips frma, schm and schi/tenc', () => {
    const sinf = parseBoxes(
      serializeBoxes([
        sinfBox(
          'avc1',
          'cbcs',
          defaults({ perSampleIvSize: 0, constantIv: IV16, cryptByteBlock: 1, skipByteBlock: 9 }),
          1,
        ),
      ]),
    )[0]!;
    const info = parseProtectionSchemeInfo(sinf);
    expect(info.originalFormat).toBe('avc1');
    expect(info.schemeType).toBe('cbcs');
    expect(info.schemeVersion).toBe(0x00010000);
    expect(info.trackEncryption?.constantIv).toEqual(IV16);
    expect(info.trackEncryption?.skipByteBlock).toBe(9);
  });
});

describe('pssh', () => {
  it('round-trips keywarden data in version 1 and the common pssh with KIDs only', () => {
    const data = encodePsshData({
      keyIds: [KID, KID2],
      contentId: 'movie',
      licenseUrl: 'https://l.example/',
      protectionScheme: 'cenc',
    });
    const kw = parseProtectionSystemHeader(
      written((w) =>
        writePssh(w, {
          version: 1,
          systemId: fromUuid(SYSTEM_IDS.keywarden),
          kids: [KID, KID2],
          data,
        }),
      ),
    );
    expect(kw.kids).toEqual([KID, KID2]);
    expect(decodePsshData(kw.data)).toMatchObject({
      contentId: 'movie',
      licenseUrl: 'https://l.example/',
      protectionScheme: 'cenc',
    });
    const common = parseProtectionSystemHeader(
      written((w) =>
        writePssh(w, {
          version: 1,
          systemId: fromUuid(SYSTEM_IDS.common),
          kids: [KID],
          data: new Uint8Array(0),
        }),
      ),
    );
    expect(common.kids).toEqual([KID]);
    expect(common.data.length).toBe(0);
  });

  it('omits the KID list in version 0', () => {
    const box = written((w) =>
      writePssh(w, {
        version: 0,
        systemId: fromUuid(SYSTEM_IDS.common),
        kids: [KID],
        data: Uint8Array.of(1, 2),
      }),
    );
    expect(box.size).toBe(8 + 4 + 16 + 4 + 2);
    expect(parseProtectionSystemHeader(box).data).toEqual(Uint8Array.of(1, 2));
  });
});

describe('senc, saiz, saio', () => {
  const entries: SampleEncryptionInfo[] = [
    { iv: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), subsamples: [{ clear: 5, protected: 32 }] },
    {
      iv: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 9),
      subsamples: [
        { clear: 65535, protected: 0 },
        { clear: 7, protected: 1 << 20 },
      ],
    },
  ];

  it('round-trips senc with subsamples and returns where its entries start', () => {
    const w = new ByteWriter(8);
    w.zeros(3);
    const at = writeSenc(w, entries, true);
    expect(at).toBe(3 + 16);
    const [box] = parseBoxes(w.toBuffer(), 3);
    const senc = parseSampleEncryption(box!, () => 8);
    expect(senc.flags).toBe(2);
    expect(sampleEncryptionInfo(senc.table, 0)).toEqual(entries[0]);
    expect(sampleEncryptionInfo(senc.table, 1)).toEqual(entries[1]);
  });

  it('round-trips senc without subsamples and with empty IVs (constant IV)', () => {
    const box = written((w) => writeSenc(w, [{ iv: new Uint8Array(0), subsamples: [] }], false));
    const senc = parseSampleEncryption(box, () => 0);
    expect(senc.flags).toBe(0);
    expect(senc.table.count).toBe(1);
  });

  it('writes saiz with a default size when uniform, else a table', () => {
    const uniform = parseAuxInfoSizes(written((w) => writeSaiz(w, [14, 14, 14])));
    expect(uniform).toMatchObject({ defaultSize: 14, sampleCount: 3 });
    const varied = parseAuxInfoSizes(written((w) => writeSaiz(w, [14, 20])));
    expect(varied.defaultSize).toBe(0);
    expect(Array.from(varied.sizes ?? [])).toEqual([14, 20]);
    const empty = parseAuxInfoSizes(written((w) => writeSaiz(w, [0, 0])));
    expect(Array.from(empty.sizes ?? [])).toEqual([0, 0]);
  });

  it('writes saio with one patchable offset', () => {
    const w = new ByteWriter(8);
    const at = writeSaio(w);
    w.patchU32(at, 1234);
    expect(parseAuxInfoOffsets(parseBoxes(w.toBuffer())[0]!).offsets).toEqual([1234]);
  });
});

describe('seig sample groups', () => {
  it('round-trips sgpd seig entries and the sbgp that maps samples to them', () => {
    const rotated = defaults({ kid: KID2 });
    const cbcs = defaults({
      kid: KID2,
      perSampleIvSize: 0,
      constantIv: IV16,
      cryptByteBlock: 1,
      skipByteBlock: 9,
    });
    const sgpd = parseSampleGroupDescription(
      written((w) => writeSeigDescriptions(w, [rotated, cbcs])),
    );
    expect(sgpd.groupingType).toBe('seig');
    expect(sgpd.entries.map((e) => parseSeigEntry(e))).toEqual([rotated, cbcs]);
    const sbgp = parseSampleToGroup(written((w) => writeSampleToGroup(w, 'seig', [[12, 0x10001]])));
    expect(sbgp.groupingType).toBe('seig');
    expect(Array.from(sbgp.entries)).toEqual([12, 0x10001]);
  });
});

describe('sidx', () => {
  it('round-trips a version 1 index of every fragment', () => {
    const buf = writeSegmentIndex({
      referenceId: 1,
      timescale: 12800,
      earliestPresentationTime: 1024,
      references: [
        { size: 1000, duration: 25600, startsWithSap: true },
        { size: 2000, duration: 12800, startsWithSap: false },
      ],
    });
    expect(buf.length).toBe(segmentIndexSize(2));
    const sidx = parseSegmentIndex(parseBoxes(buf)[0]!);
    expect(sidx).toMatchObject({
      version: 1,
      referenceId: 1,
      timescale: 12800,
      earliestPresentationTime: 1024,
      firstOffset: 0,
    });
    expect(sidx.references).toEqual([
      {
        referenceType: 0,
        referencedSize: 1000,
        subsegmentDuration: 25600,
        startsWithSap: true,
        sapType: 1,
        sapDeltaTime: 0,
      },
      {
        referenceType: 0,
        referencedSize: 2000,
        subsegmentDuration: 12800,
        startsWithSap: false,
        sapType: 0,
        sapDeltaTime: 0,
      },
    ]);
    expect(findChild(parseBoxes(buf), 'sidx')).toBeDefined();
  });
});
