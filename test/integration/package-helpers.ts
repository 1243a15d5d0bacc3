/**
 * Helpers for the packager's integration tests: per-track samples of any MP4 (flat or
 * fragmented, via the reader's parsers) and the encryption data our output carries.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { findChild, findChildren, type Box } from '../../src/media/box.js';
import { parseSampleEncryption, sampleEncryptionInfo } from '../../src/media/boxes/index.js';
import type { SampleEncryptionInfo } from '../../src/media/cenc-types.js';
import { parseFile } from '../../src/media/movie.js';
import { parseMovieFragment, trackSamples, type Sample } from '../../src/media/samples.js';
import { MEDIA_CACHE } from '../helpers/ffmpeg.js';

export const KID = '00112233445566778899aabbccddeeff';
export const KEY = '0123456789abcdef0123456789abcdef';
export const hexBytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
export const MAIN_KEY = { kid: hexBytes(KID), key: hexBytes(KEY) };

/** A scratch path for outputs of this run. */
export function outPath(name: string): string {
  const dir = path.join(MEDIA_CACHE, 'package-out');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, `${name}-${process.pid}.mp4`);
}

/** One sample of a track, with its bytes and, in our encrypted output, its senc entry. */
export interface TrackSample {
  readonly sample: Sample;
  readonly data: Buffer;
  readonly encryption?: SampleEncryptionInfo;
  /** The moof it came from (undefined for samples in moov's tables). */
  readonly moof?: Box;
}

/** Every sample of every track, in decode order: moov's tables, then each moof. */
export function samplesByTrack(buf: Buffer, ivSize = 8): Map<number, TrackSample[]> {
  const file = parseFile(buf);
  const movie = file.movie;
  if (!movie) throw new Error('no moov');
  const out = new Map<number, TrackSample[]>();
  const ends = new Map<number, number>();
  for (const track of movie.tracks) {
    const list = trackSamples(track).map((sample) => ({
      sample,
      data: buf.subarray(sample.offset, sample.offset + sample.size),
    }));
    out.set(track.id, list);
    const last = list[list.length - 1]?.sample;
    ends.set(track.id, last ? last.dts + last.duration : 0);
  }
  for (const moof of file.boxes.filter((b) => b.type === 'moof')) {
    const fragment = parseMovieFragment(moof, movie, { decodeTimes: ends });
    for (const traf of fragment.trafs) {
      const senc = findChild(traf.box, 'senc');
      const table = senc ? parseSampleEncryption(senc, () => ivSize).table : undefined;
      const list = out.get(traf.trackId) ?? [];
      traf.samples.forEach((sample, i) =>
        list.push({
          sample,
          data: buf.subarray(sample.offset, sample.offset + sample.size),
          ...(table && { encryption: sampleEncryptionInfo(table, i) }),
          moof,
        }),
      );
      out.set(traf.trackId, list);
      ends.set(traf.trackId, traf.endTime);
    }
  }
  return out;
}

/** The sample payloads per track (what must survive package → decrypt). */
export function payloadsByTrack(buf: Buffer): Map<number, Buffer[]> {
  const out = new Map<number, Buffer[]>();
  for (const [id, list] of samplesByTrack(buf))
    out.set(
      id,
      list.map((s) => s.data),
    );
  return out;
}

/** The 'seig' KIDs (hex) named in each moof's trafs, per track, in fragment order. */
export function seigKids(buf: Buffer): Map<number, (string | undefined)[]> {
  const out = new Map<number, (string | undefined)[]>();
  for (const moof of parseFile(buf).boxes.filter((b) => b.type === 'moof')) {
    for (const traf of findChildren(moof, 'traf')) {
      const tfhd = findChild(traf, 'tfhd')!;
      const trackId = Buffer.from(tfhd.payload).readUInt32BE(4);
      const sgpd = findChild(traf, 'sgpd');
      // seig entry: reserved, pattern, isProtected, IV size, then the KID (after the sgpd header of 16 bytes)
      const kid = sgpd
        ? Buffer.from(sgpd.payload.subarray(16 + 4, 16 + 20)).toString('hex')
        : undefined;
      out.set(trackId, [...(out.get(trackId) ?? []), kid]);
    }
  }
  return out;
}
