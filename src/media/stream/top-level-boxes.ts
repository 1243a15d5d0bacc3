import { isKeywardenError, kwError } from '../../errors/index.js';
import { parseBoxes, printable, readBoxHeader, type Box, type BoxHeader } from '../box.js';
import { MEDIA_CONTAINERS, TOP_LEVEL_TYPES } from '../movie.js';
import type { ByteSource } from './byte-source.js';

/** moov and moof are read whole into memory; anything larger than this is not a real header. */
export const MAX_HEADER_BOX = 64 * 1024 * 1024;

/** Reads the header of the box at `position` (which must be below the source size). */
export async function readHeaderAt(src: ByteSource, position: number): Promise<BoxHeader> {
  const left = src.size - position;
  const buf = new Uint8Array(Math.min(32, left));
  await src.read(buf, position);
  return readBoxHeader(buf, 0, buf.length, position, left);
}

/**
 * Lists the top-level boxes of a source by reading only their headers. Rejects sources
 * that do not open like ISO BMFF (MEDIA_NOT_MP4) before reading further.
 */
export async function scanTopLevel(src: ByteSource): Promise<BoxHeader[]> {
  const out: BoxHeader[] = [];
  let position = 0;
  while (position < src.size) {
    let h: BoxHeader;
    try {
      h = await readHeaderAt(src, position);
    } catch (err) {
      if (out.length === 0) throw notMp4(src, err);
      throw asTruncation(err, src, position);
    }
    if (out.length === 0 && !TOP_LEVEL_TYPES.has(h.type)) throw notMp4(src);
    out.push(h);
    position += h.size;
  }
  if (out.length === 0) throw kwError('MEDIA_NOT_MP4', `${src.name} is empty`);
  return out;
}

/** A top-level box that runs past the end of the file means the file was cut short. */
function asTruncation(err: unknown, src: ByteSource, position: number): unknown {
  if (!isKeywardenError(err, 'MEDIA_BAD_BOX_SIZE')) return err;
  const size = err.details.size;
  if (typeof size !== 'number' || size <= src.size - position) return err;
  return kwError(
    'MEDIA_TRUNCATED',
    `${src.name} ends inside a '${printable(String(err.details.box))}' box at ${position} (${size} bytes declared, ${src.size - position} present)`,
    { offset: position, size },
    err,
  );
}

function notMp4(src: ByteSource, cause?: unknown): Error {
  return kwError('MEDIA_NOT_MP4', `${src.name} does not start with an ISO BMFF box`, {}, cause);
}

/** Reads a whole box (moov, moof, sidx) into memory and parses its children. */
export async function readWholeBox(src: ByteSource, h: BoxHeader): Promise<Box> {
  if (h.size > MAX_HEADER_BOX) {
    throw kwError('MEDIA_TOO_LARGE', `'${h.type}' box of ${h.size} bytes`, {
      box: h.type,
      offset: h.offset,
    });
  }
  const buf = new Uint8Array(h.size);
  await src.read(buf, h.offset);
  const [box] = parseBoxes(buf, 0, buf.length, { base: h.offset, containers: MEDIA_CONTAINERS });
  if (!box) throw kwError('MEDIA_MALFORMED_BOX', `no box at ${h.offset}`, { offset: h.offset });
  return box;
}
