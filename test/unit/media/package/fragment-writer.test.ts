import { describe, expect, it } from 'vitest';
import { findChild, findChildren, parseBoxes } from '../../../../src/media/box.js';
import {
  parseAuxInfoOffsets,
  parseAuxInfoSizes,
  parseSampleEncryption,
  parseSampleGroupDescription,
  parseSampleToGroup,
  parseSeigEntry,
  parseTrackFragmentHeader,
  parseTrackRun,
  sampleEncryptionInfo,
} from '../../../../src/media/boxes/index.js';
import { parseMovieFragment } from '../../../../src/media/samples.js';
import {
  NON_SYNC_SAMPLE_FLAGS,
  SYNC_SAMPLE_FLAGS,
  TFHD_DEFAULT_BASE_IS_MOOF,
  writeFragment,
  type TrackFragmentPlan,
} from '../../../../src/media/package/fragment-writer.js';

const KID = new Uint8Array(16).fill(7);

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

const video: TrackFragmentPlan = {
  trackId: 1,
  baseMediaDecodeTime: 5120,
  samples: [
    { size: 40, duration: 512, compositionOffset: 1024, flags: SYNC_SAMPLE_FLAGS },
    { size: 30, duration: 512, compositionOffset: -512, flags: NON_SYNC_SAMPLE_FLAGS },
  ],
  data: [new Uint8Array(40).fill(0xa1), new Uint8Array(30).fill(0xa2)],
  encryption: {
    withSubsamples: true,
    entries: [
      { iv: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1), subsamples: [{ clear: 8, protected: 32 }] },
      { iv: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 2), subsamples: [{ clear: 14, protected: 16 }] },
    ],
    seig: { isProtected: 1, perSampleIvSize: 8, kid: KID, cryptByteBlock: 0, skipByteBlock: 0 },
  },
};

const audio: TrackFragmentPlan = {
  trackId: 2,
  baseMediaDecodeTime: 9600,
  samples: [
    { size: 10, duration: 1024, compositionOffset: 0, flags: SYNC_SAMPLE_FLAGS },
    { size: 11, duration: 1024, compositionOffset: 0, flags: SYNC_SAMPLE_FLAGS },
  ],
  data: [Uint8Array.from(Buffer.alloc(21, 0xb0))],
  encryption: {
    withSubsamples: false,
    entries: [1, 2].map((n) => ({ iv: Uint8Array.of(9, 9, 9, 9, 9, 9, 9, n), subsamples: [] })),
  },
};

describe('writeFragment', () => {
  const file = concat(writeFragment(7, [video, audio]));
  const [moof, mdat] = parseBoxes(file);

  it('writes one moof with a traf per track, then one mdat', () => {
    expect(moof?.type).toBe('moof');
    expect(mdat?.type).toBe('mdat');
    expect(mdat?.size).toBe(8 + 40 + 30 + 21);
    expect(findChildren(moof!, 'traf')).toHaveLength(2);
  });

  it('resolves, through the reader, to samples at the right mdat bytes and times', () => {
    const fragment = parseMovieFragment(moof!, undefined);
    expect(fragment.sequenceNumber).toBe(7);
    const [v, a] = fragment.trafs;
    expect(v!.samples.map((s) => [file[s.offset], s.size, s.dts, s.cts, s.sync])).toEqual([
      [0xa1, 40, 5120, 6144, true],
      [0xa2, 30, 5632, 5120, false],
    ]);
    expect(a!.samples.map((s) => [file[s.offset], s.size, s.dts])).toEqual([
      [0xb0, 10, 9600],
      [0xb0, 11, 10624],
    ]);
    expect(a!.samples[0]!.offset).toBe(v!.samples[1]!.offset + 30);
  });

  it('uses default-base-is-moof, one trun per traf, version 1 for negative offsets', () => {
    const traf = findChildren(moof!, 'traf')[0]!;
    expect(
      parseTrackFragmentHeader(findChild(traf, 'tfhd')!).flags & TFHD_DEFAULT_BASE_IS_MOOF,
    ).toBeTruthy();
    expect(findChildren(traf, 'trun')).toHaveLength(1);
    expect(findChild(traf, 'trun')!.payload[0]).toBe(1);
    expect(parseTrackRun(findChild(traf, 'trun')!).compositionOffsets).toBeDefined();
    const audioTraf = findChildren(moof!, 'traf')[1]!;
    expect(findChild(audioTraf, 'trun')!.payload[0]).toBe(0);
    expect(parseTrackRun(findChild(audioTraf, 'trun')!).sampleFlags).toBeUndefined(); // uniform: in tfhd
  });

  it('points saio at the first senc entry, relative to the moof', () => {
    for (const [i, plan] of [video, audio].entries()) {
      const traf = findChildren(moof!, 'traf')[i]!;
      const saio = parseAuxInfoOffsets(findChild(traf, 'saio')!);
      const saiz = parseAuxInfoSizes(findChild(traf, 'saiz')!);
      const senc = findChild(traf, 'senc')!;
      expect(saio.offsets).toEqual([senc.offset + 16 - moof!.offset]);
      expect(saiz.sampleCount).toBe(2);
      const table = parseSampleEncryption(senc, () => 8).table;
      expect([0, 1].map((k) => sampleEncryptionInfo(table, k))).toEqual(plan.encryption!.entries);
      const first = file.subarray(
        moof!.offset + saio.offsets[0]!,
        moof!.offset + saio.offsets[0]! + 8,
      );
      expect(Uint8Array.from(first)).toEqual(plan.encryption!.entries[0]!.iv);
    }
  });

  it('signals a rotated key with sbgp + sgpd seig in the traf', () => {
    const traf = findChildren(moof!, 'traf')[0]!;
    const sbgp = parseSampleToGroup(findChild(traf, 'sbgp')!);
    expect(Array.from(sbgp.entries)).toEqual([2, 0x10001]);
    const sgpd = parseSampleGroupDescription(findChild(traf, 'sgpd')!);
    expect(parseSeigEntry(sgpd.entries[0]!).kid).toEqual(KID);
    expect(findChild(findChildren(moof!, 'traf')[1]!, 'sgpd')).toBeUndefined();
  });

  it('writes clear tracks without encryption boxes', () => {
    const clear: TrackFragmentPlan = {
      trackId: 2,
      baseMediaDecodeTime: 0,
      samples: audio.samples,
      data: audio.data,
    };
    const [m] = parseBoxes(concat(writeFragment(1, [clear])));
    const traf = findChild(m!, 'traf')!;
    expect(['saiz', 'saio', 'senc'].map((t) => findChild(traf, t))).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });
});
