import { describe, expect, it } from 'vitest';
import { Fragmenter, type FragmentCut } from '../../../../src/media/package/fragmenter.js';
import type { SampleRef } from '../../../../src/media/package/sample-source.js';

/** Video at 25 fps (timescale 12800, 512 per frame) with a sync sample every `gop` frames. */
function videoSamples(frames: number, gop: number, first = 0): SampleRef[] {
  return Array.from({ length: frames }, (_, i) => ({
    trackId: 1,
    offset: 0,
    size: 100,
    dts: (first + i) * 512,
    cts: (first + i) * 512,
    duration: 512,
    sync: (first + i) % gop === 0,
  }));
}

/** AAC at 48 kHz (1024 per frame). */
function audioSamples(frames: number, first = 0): SampleRef[] {
  return Array.from({ length: frames }, (_, i) => ({
    trackId: 2,
    offset: 0,
    size: 10,
    dts: (first + i) * 1024,
    cts: (first + i) * 1024,
    duration: 1024,
    sync: true,
  }));
}

const AV = [
  { id: 1, timescale: 12800, lead: true },
  { id: 2, timescale: 48000, lead: false },
];

const seconds = (cut: FragmentCut, id: number, scale: number): number =>
  (cut.tracks.get(id)?.[0]?.dts ?? NaN) / scale;
const count = (cut: FragmentCut, id: number): number => cut.tracks.get(id)?.length ?? 0;

describe('Fragmenter', () => {
  it('cuts video at the first sync sample at or after each boundary, audio at the same time', () => {
    const f = new Fragmenter(AV, 2000);
    const cuts = [...f.push([...videoSamples(150, 25), ...audioSamples(282)]), ...f.finish()];
    expect(cuts.map((c) => count(c, 1))).toEqual([50, 50, 50]);
    expect(cuts.map((c) => seconds(c, 1, 12800))).toEqual([0, 2, 4]);
    for (const c of cuts.slice(1))
      expect(seconds(c, 2, 48000)).toBeGreaterThanOrEqual(seconds(c, 1, 12800));
    expect(cuts.reduce((n, c) => n + count(c, 2), 0)).toBe(282);
    expect(cuts.map((c) => c.index)).toEqual([0, 1, 2]);
  });

  it('spans several boundaries when a GOP is longer than a fragment', () => {
    const f = new Fragmenter(AV, 1000);
    const cuts = [...f.push(videoSamples(150, 60)), ...f.finish()];
    expect(cuts.map((c) => count(c, 1))).toEqual([60, 60, 30]);
  });

  it('cuts on the next sync sample after the boundary when syncs do not line up', () => {
    const f = new Fragmenter(AV, 2000);
    const cuts = [...f.push(videoSamples(100, 30)), ...f.finish()];
    // syncs at 0, 1.2, 2.4, 3.6: boundary 2 → 2.4; boundary 4 has no sync after it
    expect(cuts.map((c) => seconds(c, 1, 12800))).toEqual([0, 2.4]);
  });

  it('waits for every track before cutting (streaming input)', () => {
    const f = new Fragmenter(AV, 2000);
    expect(f.push(videoSamples(100, 25))).toEqual([]); // no audio yet: cannot close a fragment
    const cuts = f.push(audioSamples(100));
    expect(cuts.length).toBe(1); // audio reaches 2.13 s: only the first cut is safe
    expect(count(cuts[0]!, 2)).toBe(94); // 94 * 1024 / 48000 = 2.005 s ≥ 2 s
    const rest = f.finish();
    expect(rest.reduce((n, c) => n + count(c, 1), 0)).toBe(50);
  });

  it('cuts audio-only input at plain boundaries', () => {
    const f = new Fragmenter([{ id: 2, timescale: 48000, lead: true }], 1000);
    const cuts = [...f.push(audioSamples(200)), ...f.finish()];
    expect(cuts.map((c) => count(c, 2))).toEqual([47, 47, 47, 47, 12]);
  });

  it('keeps cutting by time when the lead track ends first', () => {
    const f = new Fragmenter(AV, 1000);
    const cuts = [...f.push([...videoSamples(25, 25), ...audioSamples(240)]), ...f.finish()];
    expect(cuts.length).toBeGreaterThan(4);
    expect(cuts.reduce((n, c) => n + count(c, 2), 0)).toBe(240);
    expect(Math.max(...cuts.map((c) => count(c, 2)))).toBeLessThan(60);
  });

  it('measures boundaries from the first decode time, not zero', () => {
    const f = new Fragmenter(AV, 2000);
    const cuts = [...f.push(videoSamples(100, 25, 1000)), ...f.finish()];
    expect(cuts.map((c) => count(c, 1))).toEqual([50, 50]);
  });

  it('emits nothing for empty input', () => {
    expect(new Fragmenter(AV, 2000).finish()).toEqual([]);
  });
});
