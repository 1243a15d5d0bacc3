import { kwError } from '../../errors/index.js';

/** Longest exp-Golomb prefix we accept: 32 leading zeros would not fit a 32-bit value. */
const MAX_GOLOMB_ZEROS = 31;

/**
 * A bit reader over the escaped bytes of a NAL unit payload (ITU-T H.264 §7.3.1,
 * H.265 §7.3.1.1). It drops emulation-prevention bytes (0x000003 → 0x0000) as it reads,
 * so syntax elements come from the RBSP, while {@link rawBitsRead} still counts positions
 * in the escaped stream: the packager needs the slice header's size as stored in the file.
 * Reading past the end throws MEDIA_BITSTREAM.
 */
export class NalBitReader {
  /** Raw index of the next byte to load. */
  private next: number;
  /** The byte being consumed and how many of its bits are left. */
  private current = 0;
  private bitsLeft = 0;
  /** Consecutive zero bytes just loaded (for emulation prevention). */
  private zeros = 0;

  /**
   * @param buf escaped NAL bytes
   * @param start first payload byte (after the NAL unit header)
   * @param end one past the last byte of the NAL unit
   * @param what names the structure in error messages
   */
  constructor(
    private readonly buf: Uint8Array,
    private readonly start: number,
    private readonly end: number,
    private readonly what = 'NAL unit',
  ) {
    if (start < 0 || end > buf.length || start > end) {
      throw kwError('MEDIA_BITSTREAM', `${what}: range ${start}..${end} outside its buffer`);
    }
    this.next = start;
  }

  /** Bits consumed, counted in the escaped stream (emulation-prevention bytes included). */
  get rawBitsRead(): number {
    return (this.next - this.start) * 8 - this.bitsLeft;
  }

  /** True when the reader sits on a byte boundary. */
  get byteAligned(): boolean {
    return this.bitsLeft === 0;
  }

  /** True when no RBSP bits remain (ignores trailing emulation bytes, which cannot occur last). */
  get atEnd(): boolean {
    return this.bitsLeft === 0 && this.next >= this.end;
  }

  private load(): void {
    if (this.next >= this.end) {
      throw kwError(
        'MEDIA_BITSTREAM',
        `${this.what}: read past the end of its ${this.end - this.start} bytes`,
      );
    }
    let byte = this.buf[this.next++] ?? 0;
    if (this.zeros >= 2 && byte === 0x03) {
      // H.264 §7.4.1 / H.265 §7.4.2: emulation_prevention_three_byte is discarded.
      this.zeros = 0;
      if (this.next >= this.end) {
        throw kwError('MEDIA_BITSTREAM', `${this.what}: ends in an emulation-prevention byte`);
      }
      byte = this.buf[this.next++] ?? 0;
    }
    this.zeros = byte === 0 ? this.zeros + 1 : 0;
    this.current = byte;
    this.bitsLeft = 8;
  }

  /** One bit. */
  bit(): number {
    if (this.bitsLeft === 0) this.load();
    this.bitsLeft--;
    return (this.current >> this.bitsLeft) & 1;
  }

  /** A flag: u(1) as a boolean. */
  flag(): boolean {
    return this.bit() === 1;
  }

  /** u(n), n from 0 to 32, as an unsigned number. */
  u(n: number): number {
    if (!Number.isInteger(n) || n < 0 || n > 32) {
      throw kwError('MEDIA_BITSTREAM', `${this.what}: a ${n}-bit field is out of range`);
    }
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }

  /** Skips n bits. */
  skip(n: number): void {
    for (let i = 0; i < n; i++) this.bit();
  }

  /** ue(v): unsigned exp-Golomb (H.264 §9.1). */
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      if (++zeros > MAX_GOLOMB_ZEROS) {
        throw kwError('MEDIA_BITSTREAM', `${this.what}: exp-Golomb code longer than 32 bits`);
      }
    }
    return 2 ** zeros - 1 + this.u(zeros);
  }

  /** se(v): signed exp-Golomb (H.264 §9.1.1): 1, -1, 2, -2, ... */
  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : 0 - k / 2; // 0 - 0 is +0, not -0
  }

  /** Reads and discards `count` ue(v) values. */
  skipUe(count: number): void {
    for (let i = 0; i < count; i++) this.ue();
  }

  /** Reads and discards `count` se(v) values. */
  skipSe(count: number): void {
    for (let i = 0; i < count; i++) this.se();
  }

  /** ue(v) that must not exceed `max` (a bound from the standard), else MEDIA_BITSTREAM. */
  ueMax(max: number, name: string): number {
    const v = this.ue();
    if (v > max) throw kwError('MEDIA_BITSTREAM', `${this.what}: ${name} = ${v} exceeds ${max}`);
    return v;
  }
}

/** Ceil(Log2(n)) for n ≥ 1: the bit width of u(v) fields indexing n entries. */
export function ceilLog2(n: number): number {
  let bits = 0;
  while (2 ** bits < n) bits++;
  return bits;
}

/**
 * Removes emulation-prevention bytes from an escaped NAL unit (H.264 §7.4.1), returning
 * the RBSP. Used for tests and for callers that want the plain payload.
 */
export function unescapeRbsp(escaped: Uint8Array): Uint8Array {
  const out = new Uint8Array(escaped.length);
  let n = 0;
  let zeros = 0;
  for (const byte of escaped) {
    if (zeros >= 2 && byte === 0x03) {
      zeros = 0;
      continue;
    }
    zeros = byte === 0 ? zeros + 1 : 0;
    out[n++] = byte;
  }
  return out.subarray(0, n);
}

/** Inserts emulation-prevention bytes where the RBSP would otherwise contain 0x0000xx (xx ≤ 3). */
export function escapeRbsp(rbsp: Uint8Array): Uint8Array {
  const out: number[] = [];
  let zeros = 0;
  for (const byte of rbsp) {
    if (zeros >= 2 && byte <= 0x03) {
      out.push(0x03);
      zeros = 0;
    }
    out.push(byte);
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(out);
}
