import { findPath, parseBoxes, type Box } from '../../../src/media/box.js';

/** A copy of `buf` to damage. */
export function copy(buf: Uint8Array): Buffer {
  return Buffer.from(buf);
}

/** The box at a path of container types ('moov/trak/mdia/minf/stbl/stco'); top-level index for repeats. */
export function boxAt(buf: Uint8Array, path: string, nth = 0): Box {
  const [top, ...rest] = path.split('/');
  const tops = parseBoxes(buf).filter((b) => b.type === top);
  const first = tops[nth];
  if (!first) throw new Error(`no ${top} #${nth}`);
  const box = rest.length === 0 ? first : findPath(first.children ?? [], rest.join('/'));
  if (!box) throw new Error(`no ${path}`);
  return box;
}

/** Offset of the box header whose type field is the `nth` occurrence of `fourcc`. */
export function fourccOffset(buf: Uint8Array, fourcc: string, nth = 0): number {
  let at = -1;
  for (let i = 0; i <= nth; i++) {
    at = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).indexOf(fourcc, at + 1, 'latin1');
    if (at < 0) throw new Error(`no '${fourcc}' #${nth}`);
  }
  return at - 4;
}

/** Writes a big-endian u32 at `at`. */
export function setU32(buf: Buffer, at: number, v: number): Buffer {
  buf.writeUInt32BE(v >>> 0, at);
  return buf;
}
