import { kwError } from '../errors/index.js';

/**
 * A bounds-checked big-endian reader over a slice of a buffer. Every read checks the
 * remaining length first and throws MEDIA_TRUNCATED (with the box context and the absolute
 * file offset) instead of reading past the end.
 */
export class ByteReader {
  private readonly view: DataView;
  private cursor: number;

  /**
   * @param buf the bytes
   * @param start first readable index in `buf`
   * @param end one past the last readable index in `buf`
   * @param context box type or structure name, for error messages
   * @param fileOffset absolute file offset of `buf[start]`, for error messages
   */
  constructor(
    readonly buf: Uint8Array,
    readonly start = 0,
    readonly end = buf.length,
    readonly context = 'data',
    readonly fileOffset = 0,
  ) {
    if (start < 0 || end > buf.length || start > end) {
      throw kwError('MEDIA_BAD_BOX_SIZE', `${context}: range ${start}..${end} outside buffer`);
    }
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.cursor = start;
  }

  /** Bytes consumed since `start`. */
  get pos(): number {
    return this.cursor - this.start;
  }

  get remaining(): number {
    return this.end - this.cursor;
  }

  /** Absolute position in `buf`. */
  get index(): number {
    return this.cursor;
  }

  /** Throws MEDIA_TRUNCATED unless `n` more bytes are available. */
  need(n: number, what = 'field'): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.remaining) {
      throw kwError(
        'MEDIA_TRUNCATED',
        `${this.context}: ${what} needs ${n} bytes, ${this.remaining} left`,
        {
          box: this.context,
          offset: this.fileOffset + this.pos,
        },
      );
    }
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.cursor++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.cursor);
    this.cursor += 2;
    return v;
  }

  u24(): number {
    this.need(3);
    const v = (this.view.getUint16(this.cursor) << 8) | this.view.getUint8(this.cursor + 2);
    this.cursor += 3;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.cursor);
    this.cursor += 4;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.cursor);
    this.cursor += 4;
    return v;
  }

  /** A 64-bit unsigned value; throws MEDIA_TOO_LARGE above Number.MAX_SAFE_INTEGER. */
  u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.cursor);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw kwError('MEDIA_TOO_LARGE', `${this.context}: 64-bit value ${v} is too large`, {
        box: this.context,
        offset: this.fileOffset + this.pos,
      });
    }
    this.cursor += 8;
    return Number(v);
  }

  /** A signed 64-bit value as a safe integer. */
  i64(): number {
    this.need(8);
    const v = this.view.getBigInt64(this.cursor);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw kwError('MEDIA_TOO_LARGE', `${this.context}: 64-bit value ${v} is too large`);
    }
    this.cursor += 8;
    return Number(v);
  }

  /** A view (no copy) of the next `n` bytes. */
  bytes(n: number): Uint8Array {
    this.need(n, `${n}-byte field`);
    const out = this.buf.subarray(this.cursor, this.cursor + n);
    this.cursor += n;
    return out;
  }

  /** A four-character code. */
  fourcc(): string {
    return fourccToString(this.bytes(4));
  }

  skip(n: number): void {
    this.need(n, 'skipped field');
    this.cursor += n;
  }

  /** A reader over the next `n` bytes, advancing this one past them. */
  sub(n: number, context = this.context): ByteReader {
    this.need(n, `${context} body`);
    const r = new ByteReader(
      this.buf,
      this.cursor,
      this.cursor + n,
      context,
      this.fileOffset + this.pos,
    );
    this.cursor += n;
    return r;
  }

  /** The rest of the slice, as a view. */
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  /** Version and 24-bit flags of a FullBox (ISO/IEC 14496-12 §4.2). */
  fullBoxHeader(): { version: number; flags: number } {
    const version = this.u8();
    return { version, flags: this.u24() };
  }
}

/**
 * A growable big-endian writer. `box()` and `fullBox()` write a size placeholder, run the
 * body, then patch the size, so callers never compute box sizes by hand.
 */
export class ByteWriter {
  private buf: Buffer;
  private length = 0;

  constructor(initialCapacity = 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialCapacity));
  }

  get size(): number {
    return this.length;
  }

  private reserve(n: number): number {
    const at = this.length;
    if (at + n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, at + n));
      this.buf.copy(grown, 0, 0, at);
      this.buf = grown;
    }
    this.length += n;
    return at;
  }

  u8(v: number): this {
    const at = this.reserve(1); // before this.buf: reserve() may replace the buffer
    this.buf.writeUInt8(v, at);
    return this;
  }

  u16(v: number): this {
    const at = this.reserve(2);
    this.buf.writeUInt16BE(v, at);
    return this;
  }

  u24(v: number): this {
    const at = this.reserve(3);
    this.buf.writeUInt16BE(v >>> 8, at);
    this.buf.writeUInt8(v & 0xff, at + 2);
    return this;
  }

  u32(v: number): this {
    const at = this.reserve(4);
    this.buf.writeUInt32BE(v >>> 0, at);
    return this;
  }

  i32(v: number): this {
    const at = this.reserve(4);
    this.buf.writeInt32BE(v, at);
    return this;
  }

  u64(v: number): this {
    const at = this.reserve(8);
    this.buf.writeBigUInt64BE(BigInt(v), at);
    return this;
  }

  bytes(b: Uint8Array): this {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    return this;
  }

  zeros(n: number): this {
    const at = this.reserve(n);
    this.buf.fill(0, at, this.length);
    return this;
  }

  fourcc(code: string): this {
    return this.bytes(fourccToBytes(code));
  }

  /** Overwrites a u32 at an absolute position already written. */
  patchU32(at: number, v: number): this {
    this.buf.writeUInt32BE(v >>> 0, at);
    return this;
  }

  /** Writes a box of `type` whose body is whatever `body` writes (32-bit size; 64-bit if needed). */
  box(type: string, body: (w: this) => void, uuid?: Uint8Array): this {
    const at = this.reserve(8);
    this.buf.write(type, at + 4, 4, 'latin1');
    if (uuid) this.bytes(uuid);
    body(this);
    const size = this.length - at;
    if (size > 0xffffffff) throw kwError('MEDIA_TOO_LARGE', `${type} box of ${size} bytes`);
    this.buf.writeUInt32BE(size, at);
    return this;
  }

  /** Writes a FullBox: box header, version, 24-bit flags, then the body. */
  fullBox(
    type: string,
    version: number,
    flags: number,
    body: (w: this) => void,
    uuid?: Uint8Array,
  ): this {
    return this.box(type, (w) => body(w.u8(version).u24(flags)), uuid);
  }

  /** A copy of the bytes written. */
  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }

  /** A view of the bytes written (valid until the next write). */
  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

export function fourccToString(b: Uint8Array): string {
  return String.fromCharCode(b[0] ?? 0, b[1] ?? 0, b[2] ?? 0, b[3] ?? 0);
}

export function fourccToBytes(code: string): Uint8Array {
  if (code.length !== 4) throw kwError('MEDIA_MALFORMED_BOX', `four-character code '${code}'`);
  return Uint8Array.from(code, (c) => c.charCodeAt(0) & 0xff);
}

/** Lower-case hex of bytes. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Formats 16 bytes as a UUID string (8-4-4-4-12). */
export function toUuid(b: Uint8Array): string {
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Parses a UUID string or 32 hex digits into 16 bytes. */
export function fromUuid(s: string): Uint8Array {
  const hex = s.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw kwError('MEDIA_MALFORMED_BOX', `bad UUID '${s}'`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
