import { describe, expect, it } from 'vitest';
import { parseBoxes, type Box } from '../../../src/media/box.js';
import { ByteWriter } from '../../../src/media/bytes.js';
import { parseMovie } from '../../../src/media/movie.js';
import { parseMovieFragment, samplesPerChunk, trackSamples } from '../../../src/media/samples.js';

/** A minimal moov with one video track: sample tables written by `stbl`, trex defaults when given. */
function moov(stbl: (w: ByteWriter) => void, trex?: [number, number, number, number]): Box {
  const w = new ByteWriter();
  w.box('moov', (m) => {
    m.fullBox('mvhd', 0, 0, (b) => b.u32(0).u32(0).u32(1000).u32(0).zeros(76).u32(2));
    m.box('trak', (t) => {
      t.fullBox('tkhd', 0, 3, (b) => b.u32(0).u32(0).u32(1).u32(0).u32(0).zeros(60).u32(0).u32(0));
      t.box('mdia', (md) => {
        md.fullBox('mdhd', 0, 0, (b) => b.u32(0).u32(0).u32(90000).u32(0).u16(0x55c4).u16(0));
        md.fullBox('hdlr', 0, 0, (b) => b.u32(0).fourcc('vide').zeros(12).u8(0));
        md.box('minf', (mi) =>
          mi.box('stbl', (s) => {
            s.fullBox('stsd', 0, 0, (b) =>
              b.u32(1).box('avc1', (e) => e.zeros(6).u16(1).zeros(70)),
            );
            stbl(s);
          }),
        );
      });
    });
    if (trex)
      m.box('mvex', (x) =>
        x.fullBox('trex', 0, 0, (b) =>
          b.u32(1).u32(trex[0]).u32(trex[1]).u32(trex[2]).u32(trex[3]),
        ),
      );
  });
  return parseBoxes(w.toBuffer())[0]!;
}

const emptyTables = (s: ByteWriter): void => {
  s.fullBox('stts', 0, 0, (b) => b.u32(0));
  s.fullBox('stsc', 0, 0, (b) => b.u32(0));
  s.fullBox('stsz', 0, 0, (b) => b.u32(0).u32(0));
  s.fullBox('stco', 0, 0, (b) => b.u32(0));
};

describe('trackSamples: flat sample tables', () => {
  const flat = (s: ByteWriter): void => {
    s.fullBox('stts', 0, 0, (b) => b.u32(2).u32(3).u32(3000).u32(2).u32(1500));
    s.fullBox('ctts', 1, 0, (b) => b.u32(2).u32(1).i32(-3000).u32(4).i32(6000));
    s.fullBox('stss', 0, 0, (b) => b.u32(2).u32(1).u32(4));
    s.fullBox('stsc', 0, 0, (b) => b.u32(2).u32(1).u32(2).u32(1).u32(2).u32(3).u32(1));
    s.fullBox('stsz', 0, 0, (b) => b.u32(0).u32(5).u32(10).u32(20).u32(30).u32(40).u32(50));
    s.fullBox('stco', 0, 0, (b) => b.u32(2).u32(1000).u32(5000));
  };

  it('places samples by stsc/stco/stsz with times from stts/ctts and sync from stss', () => {
    const track = parseMovie(moov(flat)).tracks[0]!;
    const samples = trackSamples(track);
    expect(samples.map((s) => s.offset)).toEqual([1000, 1010, 5000, 5030, 5070]);
    expect(samples.map((s) => s.dts)).toEqual([0, 3000, 6000, 9000, 10500]);
    expect(samples.map((s) => s.cts)).toEqual([-3000, 9000, 12000, 15000, 16500]);
    expect(samples.map((s) => s.sync)).toEqual([true, false, false, true, false]);
    expect(samplesPerChunk(track)).toEqual([2, 3]);
  });

  it('refuses samples past the data and counts the data cannot hold', () => {
    const track = parseMovie(moov(flat)).tracks[0]!;
    expect(() => trackSamples(track, { dataLimit: 5100 })).toThrow(
      expect.objectContaining({ code: 'MEDIA_SAMPLE_OUT_OF_RANGE' }),
    );
    const uniform = parseMovie(
      moov((s) => {
        s.fullBox('stts', 0, 0, (b) => b.u32(1).u32(0xffffffff).u32(1));
        s.fullBox('stsc', 0, 0, (b) => b.u32(1).u32(1).u32(0xffffffff).u32(1));
        s.fullBox('stsz', 0, 0, (b) => b.u32(100).u32(0xffffffff));
        s.fullBox('stco', 0, 0, (b) => b.u32(1).u32(0));
      }),
    ).tracks[0]!;
    expect(() => trackSamples(uniform, { dataLimit: 1e6 })).toThrow(
      expect.objectContaining({ code: 'MEDIA_TOO_LARGE' }),
    );
  });

  it('tables that do not cover every sample are MEDIA_MALFORMED_BOX', () => {
    const short = parseMovie(
      moov((s) => {
        s.fullBox('stts', 0, 0, (b) => b.u32(1).u32(1).u32(10));
        s.fullBox('stsc', 0, 0, (b) => b.u32(1).u32(1).u32(1).u32(1));
        s.fullBox('stsz', 0, 0, (b) => b.u32(4).u32(3));
        s.fullBox('stco', 0, 0, (b) => b.u32(1).u32(0));
      }),
    ).tracks[0]!;
    expect(() => trackSamples(short)).toThrow(
      expect.objectContaining({ code: 'MEDIA_MALFORMED_BOX' }),
    );
  });
});

/** A moof at `base` with the trafs written by `trafs`. */
function moof(trafs: (w: ByteWriter) => void, base = 0): Box {
  const w = new ByteWriter();
  w.box('moof', (m) => {
    m.fullBox('mfhd', 0, 0, (b) => b.u32(7));
    trafs(m);
  });
  return parseBoxes(w.toBuffer(), 0, undefined, { base })[0]!;
}

describe('parseMovieFragment', () => {
  const movie = parseMovie(moov(emptyTables, [1, 1024, 100, 0x10000]));

  it('applies trex then tfhd defaults, default-base-is-moof and several truns', () => {
    const f = parseMovieFragment(
      moof(
        (m) =>
          m.box('traf', (t) => {
            t.fullBox('tfhd', 0, 0x020000 | 0x10, (b) => b.u32(1).u32(50));
            t.fullBox('tfdt', 1, 0, (b) => b.u64(90000));
            t.fullBox('trun', 0, 0x1 | 0x4, (b) => b.u32(2).i32(200).u32(0));
            t.fullBox('trun', 0, 0x1 | 0x200, (b) => b.u32(1).i32(400).u32(7));
            t.fullBox('trun', 0, 0, (b) => b.u32(1));
          }),
        1000,
      ),
      movie,
    );
    const tf = f.trafs[0]!;
    expect(f.sequenceNumber).toBe(7);
    expect(tf.samples.map((s) => [s.offset, s.size, s.dts, s.sync])).toEqual([
      [1200, 50, 90000, true],
      [1250, 50, 91024, false],
      [1400, 7, 92048, false],
      [1407, 50, 93072, false],
    ]);
    expect(tf.endTime).toBe(94096);
    expect(tf.runs.map((r) => r.firstSample)).toEqual([0, 2, 3]);
  });

  it('explicit base_data_offset, the previous traf end as base, and decode times carried over', () => {
    const f = parseMovieFragment(
      moof((m) => {
        m.box('traf', (t) => {
          t.fullBox('tfhd', 0, 0x1 | 0x10, (b) => b.u32(1).u64(5000).u32(10));
          t.fullBox('trun', 0, 0x1, (b) => b.u32(2).i32(8));
        });
        m.box('traf', (t) => {
          t.fullBox('tfhd', 0, 0x10, (b) => b.u32(1).u32(4));
          t.fullBox('trun', 0, 0, (b) => b.u32(1));
        });
      }),
      movie,
      { decodeTimes: new Map([[1, 777]]) },
    );
    expect(f.trafs[0]!.samples.map((s) => s.offset)).toEqual([5008, 5018]);
    expect(f.trafs[0]!.samples[0]!.dts).toBe(777);
    expect(f.trafs[1]!.baseOffset).toBe(5028);
    expect(f.trafs[1]!.samples[0]!.offset).toBe(5028);
  });

  it('missing defaults, unknown tracks and counts beyond the data are coded errors', () => {
    const bare = parseMovie(moov(emptyTables));
    const noDefaults = moof((m) =>
      m.box('traf', (t) => {
        t.fullBox('tfhd', 0, 0, (b) => b.u32(1));
        t.fullBox('trun', 0, 0, (b) => b.u32(3));
      }),
    );
    expect(() => parseMovieFragment(noDefaults, bare)).toThrow(
      expect.objectContaining({ code: 'MEDIA_MISSING_BOX' }),
    );
    const unknown = moof((m) => m.box('traf', (t) => t.fullBox('tfhd', 0, 0, (b) => b.u32(9))));
    expect(() => parseMovieFragment(unknown, movie)).toThrow(
      expect.objectContaining({ code: 'MEDIA_MALFORMED_BOX' }),
    );
    const huge = moof((m) =>
      m.box('traf', (t) => {
        t.fullBox('tfhd', 0, 0x10, (b) => b.u32(1).u32(1000));
        t.fullBox('trun', 0, 0, (b) => b.u32(900_000));
      }),
    );
    expect(() => parseMovieFragment(huge, movie, { dataLimit: 1e6 })).toThrow(
      expect.objectContaining({ code: 'MEDIA_TOO_LARGE' }),
    );
  });
});
