import { kwError } from '../../errors/index.js';
import type { SampleEntry } from '../boxes/index.js';
import { isAacEsds } from '../codec/esds.js';
import type { NalCodec } from '../codec/slice-header-parser.js';
import type { Track } from '../movie.js';

/** How the packager treats a track. */
export type TrackRole =
  | {
      readonly kind: 'video';
      readonly codec: NalCodec;
      readonly format: string;
      readonly config: Uint8Array;
    }
  | { readonly kind: 'audio'; readonly codec: 'aac'; readonly format: string }
  | { readonly kind: 'clear'; readonly format: string };

/** Sample entry types of H.264 and H.265 and the box holding their decoder configuration. */
const NAL_FORMATS: Readonly<Record<string, { codec: NalCodec; configBox: string }>> = {
  avc1: { codec: 'h264', configBox: 'avcC' },
  avc3: { codec: 'h264', configBox: 'avcC' },
  hvc1: { codec: 'h265', configBox: 'hvcC' },
  hev1: { codec: 'h265', configBox: 'hvcC' },
};

/**
 * Decides what to do with a track:
 * - video ('vide') must be H.264 or H.265 and audio ('soun') must be AAC, else
 *   MEDIA_UNSUPPORTED_CODEC: silently shipping a clear video or audio track in a file meant
 *   to be protected is the surprise an operator would not forgive;
 * - every other track (subtitles, timed metadata, timecode, ...) is copied clear.
 * An input that is already encrypted is refused, as is a track with several sample entries.
 */
export function classifyTrack(track: Track): TrackRole {
  if (track.protection.some((p) => p !== undefined)) {
    throw kwError('MEDIA_ALREADY_PROTECTED', `track ${track.id} is already encrypted`, {
      trackId: track.id,
    });
  }
  const entries = track.descriptions.entries;
  const entry = entries[0];
  if (!entry)
    throw kwError('MEDIA_MISSING_BOX', `track ${track.id} has no sample entry`, {
      trackId: track.id,
      box: 'stsd',
    });
  if (entries.length > 1) {
    throw kwError(
      'MEDIA_UNSUPPORTED',
      `track ${track.id} has ${entries.length} sample entries; the packager takes one`,
      {
        trackId: track.id,
      },
    );
  }
  const handler = track.handler.handlerType;
  if (handler === 'vide') return videoRole(track, entry);
  if (handler === 'soun') return audioRole(track, entry);
  return { kind: 'clear', format: entry.format };
}

function videoRole(track: Track, entry: SampleEntry): TrackRole {
  const nal = NAL_FORMATS[entry.format];
  if (!nal) throw unsupported(track, entry.format, 'video');
  const config = entry.children.find((c) => c.type === nal.configBox);
  if (!config) {
    throw kwError(
      'MEDIA_MISSING_BOX',
      `track ${track.id} '${entry.format}' has no '${nal.configBox}'`,
      {
        trackId: track.id,
        box: nal.configBox,
      },
    );
  }
  return { kind: 'video', codec: nal.codec, format: entry.format, config: config.payload };
}

function audioRole(track: Track, entry: SampleEntry): TrackRole {
  const esds = entry.children.find((c) => c.type === 'esds');
  if (entry.format !== 'mp4a' || !esds || !isAacEsds(esds.payload))
    throw unsupported(track, entry.format, 'audio');
  return { kind: 'audio', codec: 'aac', format: entry.format };
}

function unsupported(track: Track, format: string, kind: string): Error {
  return kwError(
    'MEDIA_UNSUPPORTED_CODEC',
    `track ${track.id} is ${kind} in '${format}', which the packager cannot encrypt`,
    {
      trackId: track.id,
      format,
    },
  );
}
