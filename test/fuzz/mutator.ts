/**
 * Seeded structure-aware mutations of MP4 files: bit flips, byte sets, truncation, box size
 * fields set to the values that break parsers (0, 1, 7, 8, off by one, beyond EOF, 0xFFFFFFFF),
 * count fields set huge, and box splices (a box copied, moved or removed).
 */

/** mulberry32: small, fast, good enough to reproduce a campaign from its seed. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
}

/** A box found by scanning: where its size field is. */
export interface BoxSpot {
  readonly offset: number;
  readonly size: number;
  readonly type: string;
}

const CONTAINERS = new Set([
  'moov',
  'trak',
  'mdia',
  'minf',
  'stbl',
  'mvex',
  'moof',
  'traf',
  'sinf',
  'schi',
  'edts',
  'dinf',
]);

/** Every box header reachable through the usual containers (and stsd/sample entries), leniently. */
export function findBoxes(
  buf: Uint8Array,
  start = 0,
  end = buf.length,
  depth = 0,
  out: BoxSpot[] = [],
): BoxSpot[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = start;
  while (at + 8 <= end && depth < 12) {
    const size = view.getUint32(at);
    const type = String.fromCharCode(...buf.subarray(at + 4, at + 8));
    if (size < 8 || at + size > end) break;
    out.push({ offset: at, size, type });
    if (CONTAINERS.has(type)) findBoxes(buf, at + 8, at + size, depth + 1, out);
    if (type === 'stsd') findBoxes(buf, at + 16, at + size, depth + 1, out);
    if (type === 'encv') findBoxes(buf, at + 8 + 78, at + size, depth + 1, out);
    if (type === 'enca') findBoxes(buf, at + 8 + 28, at + size, depth + 1, out);
    at += size;
  }
  return out;
}

const INTERESTING_U32 = [
  0, 1, 2, 7, 8, 9, 15, 16, 0x7f, 0x80, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe,
  0xffffffff,
];
const INTERESTING_U8 = [0, 1, 2, 7, 8, 15, 16, 0x7f, 0x80, 0xfe, 0xff];

type Mutation = (rng: Rng, buf: Buffer, boxes: readonly BoxSpot[]) => Buffer;

const bitFlips: Mutation = (rng, buf) => {
  const out = Buffer.from(buf);
  for (let i = 1 + rng.int(8); i > 0; i--) {
    const at = rng.int(out.length);
    out[at] = out[at]! ^ (1 << rng.int(8));
  }
  return out;
};

const byteSets: Mutation = (rng, buf, boxes) => {
  const out = Buffer.from(buf);
  // Mostly inside box headers and the first bytes of bodies, where the structure is.
  for (let i = 1 + rng.int(4); i > 0; i--) {
    const box = boxes.length > 0 && rng.next() < 0.8 ? rng.pick(boxes) : undefined;
    const at = box ? box.offset + rng.int(Math.min(box.size, 64)) : rng.int(out.length);
    if (at < out.length) out[at] = rng.next() < 0.5 ? rng.pick(INTERESTING_U8) : rng.int(256);
  }
  return out;
};

const truncate: Mutation = (rng, buf, boxes) => {
  const cut =
    boxes.length > 0 && rng.next() < 0.5
      ? rng.pick(boxes).offset + rng.int(24)
      : rng.int(buf.length);
  return Buffer.from(buf.subarray(0, Math.min(cut, buf.length)));
};

const sizeField: Mutation = (rng, buf, boxes) => {
  if (boxes.length === 0) return bitFlips(rng, buf, boxes);
  const out = Buffer.from(buf);
  const box = rng.pick(boxes);
  const choices = [
    ...INTERESTING_U32,
    box.size - 1,
    box.size + 1,
    box.size * 2,
    buf.length - box.offset + 1,
    buf.length - box.offset,
  ];
  out.writeUInt32BE(rng.pick(choices) >>> 0, box.offset);
  return out;
};

/** The u32 after a FullBox header (entry/sample counts) or any u32 in the first bytes of a body. */
const countField: Mutation = (rng, buf, boxes) => {
  if (boxes.length === 0) return bitFlips(rng, buf, boxes);
  const out = Buffer.from(buf);
  const box = rng.pick(boxes);
  const at = box.offset + 8 + 4 * rng.int(Math.max(1, Math.min(6, (box.size - 12) >> 2)));
  if (at + 4 <= out.length) out.writeUInt32BE(rng.pick(INTERESTING_U32) >>> 0, at);
  return out;
};

const splice: Mutation = (rng, buf, boxes) => {
  if (boxes.length < 2) return truncate(rng, buf, boxes);
  const a = rng.pick(boxes);
  const piece = buf.subarray(a.offset, a.offset + Math.min(a.size, 4096));
  const b = rng.pick(boxes);
  const mode = rng.int(3);
  if (mode === 0) return Buffer.concat([buf.subarray(0, b.offset), piece, buf.subarray(b.offset)]);
  if (mode === 1)
    return Buffer.concat([buf.subarray(0, a.offset), buf.subarray(a.offset + a.size)]);
  return Buffer.concat([buf.subarray(0, b.offset), piece, buf.subarray(b.offset + b.size)]);
};

const MUTATIONS: readonly Mutation[] = [
  bitFlips,
  byteSets,
  byteSets,
  truncate,
  sizeField,
  sizeField,
  countField,
  countField,
  splice,
];

/** One to three stacked mutations of `seed`. */
export function mutate(rng: Rng, seed: Buffer, boxes: readonly BoxSpot[]): Buffer {
  let out = seed;
  for (let i = 1 + rng.int(3); i > 0; i--)
    out = rng.pick(MUTATIONS)(rng, out, out === seed ? boxes : findBoxes(out));
  return out;
}
