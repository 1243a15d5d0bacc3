import { kwError } from '../errors/index.js';
import { ByteReader, ByteWriter, fourccToString, toHex } from './bytes.js';

/** Deeper nesting than this is a nesting bomb, not a real file (real files stay under 12). */
export const MAX_BOX_DEPTH = 24;

/** Containers whose payload is nothing but child boxes (ISO/IEC 14496-12, 23001-7). */
export const CONTAINER_BOXES: ReadonlySet<string> = new Set([
  'moov',
  'trak',
  'edts',
  'mdia',
  'minf',
  'dinf',
  'stbl',
  'mvex',
  'moof',
  'traf',
  'mfra',
  'udta',
  'sinf',
  'schi',
  'rinf',
  'tref',
]);

/** A parsed box header. Offsets are absolute in the source (file or buffer). */
export interface BoxHeader {
  readonly type: string;
  /** Total size including the header. */
  readonly size: number;
  /** 8, 16 (64-bit size), plus 16 for 'uuid' boxes. */
  readonly headerSize: number;
  /** Absolute offset of the first header byte. */
  readonly offset: number;
  /** The extended type of a 'uuid' box, as 32 hex digits. */
  readonly uuid?: string;
}

/**
 * Reads a box header from `buf` at `at`, where the enclosing container (or file) ends at
 * `end`. Rejects sizes below the header, 64-bit sizes below 16, and boxes that run past
 * the container. Size 0 ("to the end") is resolved to the container end.
 *
 * @param base absolute offset of `buf[0]` in the source
 * @param available when the box may legitimately continue beyond `buf` (streaming a file),
 *   the number of bytes of the source from `at` onward; defaults to `end - at`
 */
export function readBoxHeader(
  buf: Uint8Array,
  at: number,
  end: number,
  base = 0,
  available?: number,
): BoxHeader {
  const room = available ?? end - at;
  const offset = base + at;
  if (room < 8 || end - at < 8) {
    throw kwError(
      'MEDIA_TRUNCATED',
      `box header at ${offset} needs 8 bytes, ${Math.min(room, end - at)} left`,
      { offset },
    );
  }
  const r = new ByteReader(buf, at, end, 'box header', offset);
  let size = r.u32();
  const type = r.fourcc();
  let headerSize = 8;
  if (size === 1) {
    size = r.u64();
    headerSize = 16;
    if (size < 16) throw badSize(type, offset, size, 'a 64-bit size below 16');
  } else if (size === 0) {
    size = room;
  } else if (size < 8) {
    throw badSize(type, offset, size, 'a size below the 8-byte header');
  }
  let uuid: string | undefined;
  if (type === 'uuid') {
    uuid = toHex(r.bytes(16));
    headerSize += 16;
    if (size < headerSize) throw badSize(type, offset, size, 'a size below its header');
  }
  if (size > room) {
    throw kwError(
      'MEDIA_BAD_BOX_SIZE',
      `'${printable(type)}' box at ${offset} claims ${size} bytes but only ${room} remain`,
      {
        box: type,
        offset,
        size,
      },
    );
  }
  return uuid === undefined
    ? { type, size, headerSize, offset }
    : { type, size, headerSize, offset, uuid };
}

function badSize(type: string, offset: number, size: number, why: string): Error {
  return kwError(
    'MEDIA_BAD_BOX_SIZE',
    `'${printable(type)}' box at ${offset} has ${why} (${size})`,
    {
      box: type,
      offset,
      size,
    },
  );
}

/** A box type safe to print (control bytes in a garbage header become '?'). */
export function printable(type: string): string {
  return type.replace(/[^\x20-\x7e]/g, '?');
}

/** A box held in memory: either a container with children or a leaf with its payload. */
export interface Box extends BoxHeader {
  /** The body after the header (a view into the source buffer). */
  readonly payload: Uint8Array;
  /** Parsed children, for container boxes. */
  readonly children?: Box[];
}

/** Options for {@link parseBoxes}. */
export interface ParseOptions {
  /** Absolute offset of `buf[0]`. */
  base?: number;
  /** Current nesting depth (callers normally leave it). */
  depth?: number;
  /** Which types to descend into; defaults to {@link CONTAINER_BOXES}. */
  containers?: ReadonlySet<string>;
}

/** Parses the sequence of boxes in `buf[start..end)`, descending into containers. */
export function parseBoxes(
  buf: Uint8Array,
  start = 0,
  end = buf.length,
  opts: ParseOptions = {},
): Box[] {
  const depth = opts.depth ?? 0;
  if (depth > MAX_BOX_DEPTH) {
    throw kwError('MEDIA_NESTING_TOO_DEEP', `boxes nested more than ${MAX_BOX_DEPTH} deep`, {
      offset: (opts.base ?? 0) + start,
    });
  }
  const containers = opts.containers ?? CONTAINER_BOXES;
  const base = opts.base ?? 0;
  const out: Box[] = [];
  let at = start;
  while (at < end) {
    const h = readBoxHeader(buf, at, end, base);
    const payload = buf.subarray(at + h.headerSize, at + h.size);
    if (containers.has(h.type)) {
      const children = parseBoxes(buf, at + h.headerSize, at + h.size, {
        ...opts,
        depth: depth + 1,
      });
      out.push({ ...h, payload, children });
    } else {
      out.push({ ...h, payload });
    }
    at += h.size;
  }
  return out;
}

/** The first child of `box` (or of a box list) with the given type. */
export function findChild(parent: Box | readonly Box[], type: string): Box | undefined {
  const list = Array.isArray(parent) ? parent : ((parent as Box).children ?? []);
  return (list as readonly Box[]).find((b) => b.type === type);
}

/** All children of the given type. */
export function findChildren(parent: Box | readonly Box[], type: string): Box[] {
  const list = Array.isArray(parent) ? parent : ((parent as Box).children ?? []);
  return (list as readonly Box[]).filter((b) => b.type === type);
}

/** Follows a path of types ('moov/trak/mdia') from a box list; first match at each step. */
export function findPath(root: Box | readonly Box[], path: string): Box | undefined {
  let cur: Box | readonly Box[] | undefined = root;
  for (const type of path.split('/')) {
    if (cur === undefined) return undefined;
    cur = findChild(cur, type);
  }
  return cur as Box | undefined;
}

/** Like {@link findChild} but throws MEDIA_MISSING_BOX. */
export function requireChild(parent: Box | readonly Box[], type: string, where: string): Box {
  const b = findChild(parent, type);
  if (!b) throw kwError('MEDIA_MISSING_BOX', `${where} has no '${type}' box`, { box: type, where });
  return b;
}

/** A reader over a leaf box's payload with error context. */
export function boxReader(box: Box): ByteReader {
  return new ByteReader(box.payload, 0, box.payload.length, box.type, box.offset + box.headerSize);
}

/** A new in-memory box (for writing): a leaf with a payload, or a container with children. */
export function makeBox(type: string, content: Uint8Array | Box[], uuid?: string): Box {
  const headerSize = 8 + (uuid ? 16 : 0);
  if (content instanceof Uint8Array) {
    const base = {
      type,
      size: headerSize + content.length,
      headerSize,
      offset: -1,
      payload: content,
    };
    return uuid ? { ...base, uuid } : base;
  }
  const size = headerSize + content.reduce((n, c) => n + c.size, 0);
  const base = {
    type,
    size,
    headerSize,
    offset: -1,
    payload: new Uint8Array(0),
    children: content,
  };
  return uuid ? { ...base, uuid } : base;
}

/** Writes a box tree: containers from their children, leaves from their payload. */
export function writeBox(w: ByteWriter, box: Box): void {
  const uuid = box.uuid ? Buffer.from(box.uuid, 'hex') : undefined;
  w.box(
    box.type,
    (body) => {
      if (box.children) for (const c of box.children) writeBox(body, c);
      else body.bytes(box.payload);
    },
    uuid,
  );
}

/** Serializes a list of boxes into one buffer. */
export function serializeBoxes(boxes: readonly Box[]): Buffer {
  const w = new ByteWriter(boxes.reduce((n, b) => n + b.size, 0) + 64);
  for (const b of boxes) writeBox(w, b);
  return w.toBuffer();
}

/** The serialized size of a box tree (recomputed: edits may have changed children). */
export function boxSize(box: Box): number {
  const header = 8 + (box.uuid ? 16 : 0);
  const body = box.children ? box.children.reduce((n, c) => n + boxSize(c), 0) : box.payload.length;
  return header + body + (header + body > 0xffffffff ? 8 : 0);
}

export { fourccToString };
