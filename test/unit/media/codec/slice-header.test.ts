import { describe, expect, it } from 'vitest';
import { parseAvcConfig, parseHevcConfig } from '../../../../src/media/codec/decoder-config.js';
import { H264ParameterSets } from '../../../../src/media/codec/h264-parameter-sets.js';
import {
  H264_SLICE_NAL_TYPES,
  h264SliceHeaderBits,
  sliceGroupChangeCycleBits,
} from '../../../../src/media/codec/h264-slice-header.js';
import { H265ParameterSets } from '../../../../src/media/codec/h265-parameter-sets.js';
import {
  h265SliceHeaderBits,
  isH265SliceNalType,
} from '../../../../src/media/codec/h265-slice-header.js';
import { splitNalUnits } from '../../../../src/media/codec/nal-units.js';
import { createSliceHeaderParser } from '../../../../src/media/codec/slice-header-parser.js';
import { hasFfmpeg, makeClip } from '../../../helpers/ffmpeg.js';
import {
  countEmulationBytes,
  makeVariant,
  readClipVideo,
  traceSliceHeaderBits,
  type ClipVideo,
} from './clip-bitstream.js';

const x264 = (params: string, extra: string[] = []): string[] => [
  '-c:v',
  'libx264',
  '-preset',
  'veryfast',
  '-g',
  '25',
  '-x264-params',
  params,
  ...extra,
];
const x265 = (params: string, extra: string[] = []): string[] => [
  '-c:v',
  'libx265',
  '-preset',
  'veryfast',
  '-g',
  '25',
  '-x265-params',
  `log-level=error:${params}`,
  '-tag:v',
  'hvc1',
  ...extra,
];

/** Encoder variants chosen to reach the less common branches of the slice header syntax. */
const VARIANTS: Record<string, () => Promise<string>> = {
  'h264 CABAC, 2 slices, B-frames (makeClip)': () => makeClip({ video: 'h264', seconds: 2 }),
  'h264 baseline CAVLC, 3 slices': () =>
    makeVariant('h264-cavlc', x264('slices=3', ['-profile:v', 'baseline', '-pix_fmt', 'yuv420p'])),
  'h264 interlaced MBAFF, 4 refs, B-pyramid, weighted P': () =>
    makeVariant(
      'h264-interlaced',
      x264('interlaced=1:ref=4:bframes=3:b-pyramid=normal:weightp=2:slices=2', [
        '-pix_fmt',
        'yuv420p',
      ]),
    ),
  'h264 4:4:4 with JVT scaling matrices': () =>
    makeVariant('h264-444-cqm', x264('cqm=jvt:slices=2:bframes=2', ['-pix_fmt', 'yuv444p'])),
  'h264 weighted bipred, 2 PPS modes (constrained intra)': () =>
    makeVariant(
      'h264-weightb',
      x264('weightb=1:bframes=3:b-adapt=2:constrained-intra=1:direct=temporal', [
        '-pix_fmt',
        'yuv420p',
      ]),
    ),
  'h264 avc3 with in-band SPS/PPS (repeat-headers)': () =>
    makeVariant(
      'h264-inband',
      x264('repeat-headers=1:slices=2', ['-pix_fmt', 'yuv420p', '-tag:v', 'avc3']),
    ),
  'h265 hev1 with in-band VPS/SPS/PPS (repeat-headers)': () =>
    makeVariant(
      'h265-inband',
      x265('repeat-headers=1:slices=2', ['-pix_fmt', 'yuv420p', '-tag:v', 'hev1']),
    ),
  'h265 WPP entry points, 2 slices (makeClip)': () => makeClip({ video: 'h265', seconds: 2 }),
  'h265 weighted P/B, B-pyramid, 3 slices': () =>
    makeVariant(
      'h265-weighted',
      x265('weightp=1:weightb=1:bframes=4:b-pyramid=1:slices=3:ref=4', ['-pix_fmt', 'yuv420p']),
    ),
  'h265 4:4:4 RExt with scaling lists, closed GOP': () =>
    makeVariant(
      'h265-444',
      x265('scaling-list=default:open-gop=0:slices=2:bframes=2', ['-pix_fmt', 'yuv444p']),
    ),
  'h265 no WPP, SAO off, deblocking off, temporal MVP off, intra refresh': () =>
    makeVariant(
      'h265-tools',
      x265('wpp=0:no-sao=1:no-deblock=1:tmvp=0:bframes=0:intra-refresh=1:keyint=30', [
        '-pix_fmt',
        'yuv420p',
      ]),
    ),
  'h265 signed deblocking offsets, cb/cr QP offsets, 6 refs': () =>
    makeVariant(
      'h265-offsets',
      x265('deblock=-2,2:cbqpoffs=2:crqpoffs=-2:ref=6:bframes=3:slices=2', ['-pix_fmt', 'yuv420p']),
    ),
};

/** Our slice header lengths, converted to ffmpeg's measure (RBSP bits including the NAL header). */
function ourSliceHeaderBits(video: ClipVideo): number[] {
  const h264 = video.format.startsWith('avc');
  const config = h264 ? parseAvcConfig(video.config) : parseHevcConfig(video.config);
  const h264Sets = new H264ParameterSets();
  const h265Sets = new H265ParameterSets();
  for (const ps of config.parameterSets) (h264 ? h264Sets : h265Sets).add(ps);
  const out: number[] = [];
  for (const sample of video.samples) {
    for (const u of splitNalUnits(sample, config.nalLengthSize)) {
      const nal = sample.subarray(u.start, u.end);
      const type = h264 ? nal[0]! & 0x1f : (nal[0]! >> 1) & 0x3f;
      const headerBits = h264 ? 8 : 16;
      if (h264 && (type === 7 || type === 8)) h264Sets.add(nal);
      if (!h264 && (type === 33 || type === 34)) h265Sets.add(nal);
      if (h264 ? !H264_SLICE_NAL_TYPES.has(type) : !isH265SliceNalType(type)) continue;
      const raw = h264 ? h264SliceHeaderBits(nal, h264Sets) : h265SliceHeaderBits(nal, h265Sets);
      const epb = countEmulationBytes(nal, headerBits / 8 + Math.ceil(raw / 8));
      out.push(headerBits + raw - 8 * epb);
    }
  }
  return out;
}

describe.skipIf(!hasFfmpeg())('slice header lengths against ffmpeg trace_headers', () => {
  it.each(Object.keys(VARIANTS))('%s', async (name) => {
    const file = await VARIANTS[name]!();
    const video = readClipVideo(file);
    const ours = ourSliceHeaderBits(video);
    const oracle = await traceSliceHeaderBits(file);
    expect(ours.length).toBeGreaterThanOrEqual(video.samples.length);
    expect(ours).toEqual(oracle);
  });

  it('keeps NAL and slice headers clear through the SliceHeaderParser facade', async () => {
    const video = readClipVideo(await makeClip({ video: 'h264', seconds: 2 }));
    const parser = createSliceHeaderParser('h264', video.config);
    const sample = video.samples[0]!;
    const kinds = splitNalUnits(sample, parser.nalLengthSize).map((u) => {
      const nal = sample.subarray(u.start, u.end);
      return { type: nal[0]! & 0x1f, clear: parser.clearHeaderBytes(nal), size: nal.length };
    });
    expect(kinds.filter((k) => k.type === 6).every((k) => k.clear === undefined)).toBe(true); // SEI
    const slices = kinds.filter((k) => k.type === 5);
    expect(slices).toHaveLength(2);
    for (const s of slices) {
      expect(s.clear).toBeGreaterThan(1);
      expect(s.clear).toBeLessThan(16);
    }
  });
});

describe('slice header parsing failures', () => {
  it('reports a slice that names an unknown PPS as MEDIA_BITSTREAM', () => {
    const sets = new H264ParameterSets();
    // IDR slice: first_mb 0 (1), slice_type 7 (0001000), pps_id 0 (1)
    const nal = Uint8Array.from([0x65, 0b10001000, 0b11000000]);
    expect(() => h264SliceHeaderBits(nal, sets)).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
  });

  it('reports truncated and garbage parameter sets as MEDIA_BITSTREAM, never a crash', () => {
    let seed = 42;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 0xff;
    for (let i = 0; i < 300; i++) {
      const len = 1 + (i % 40);
      const h264 = Uint8Array.from({ length: len }, rand);
      h264[0] = i % 2 === 0 ? 0x67 : 0x68;
      const h265 = Uint8Array.from({ length: len + 1 }, rand);
      h265[0] = i % 2 === 0 ? 0x42 : 0x44;
      h265[1] = 0x01;
      for (const [sets, nal] of [
        [new H264ParameterSets(), h264],
        [new H265ParameterSets(), h265],
      ] as const) {
        try {
          sets.add(nal);
        } catch (err) {
          expect((err as { code?: string }).code).toMatch(/^MEDIA_(BITSTREAM|UNSUPPORTED_CODEC)$/);
        }
      }
    }
  });

  it('wraps garbage in the decoder configuration as MEDIA_BITSTREAM', () => {
    expect(() =>
      createSliceHeaderParser('h264', Uint8Array.from([1, 100, 0, 30, 0xff, 0xe1, 0, 4, 0x67])),
    ).toThrow(expect.objectContaining({ code: 'MEDIA_BITSTREAM' }));
    expect(() => createSliceHeaderParser('h265', Uint8Array.from([2]))).toThrow(
      expect.objectContaining({ code: 'MEDIA_BITSTREAM' }),
    );
  });

  it('sizes slice_group_change_cycle with exact division (H.264 §7.4.3)', () => {
    // 99 map units, rate 2: Ceil(Log2(99 / 2 + 1)) = Ceil(Log2(50.5)) = 6
    expect(sliceGroupChangeCycleBits(99, 2)).toBe(6);
    expect(sliceGroupChangeCycleBits(96, 2)).toBe(6); // Log2(49) → 6
    expect(sliceGroupChangeCycleBits(62, 2)).toBe(5); // Log2(32) = 5 exactly
  });
});
