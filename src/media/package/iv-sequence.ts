import { randomBytes } from 'node:crypto';
import type { TrackProtectionParams } from './scheme-policy.js';

const BLOCK = 16;
const MASK_128 = (1n << 128n) - 1n;
const MASK_64 = (1n << 64n) - 1n;

/** Source of random bytes (injectable so that tests are deterministic). */
export type RandomSource = (size: number) => Uint8Array;

/** node:crypto's CSPRNG. */
export const cryptoRandom: RandomSource = (size) => Uint8Array.from(randomBytes(size));

/**
 * The IVs of one track, in sample order (ISO/IEC 23001-7 §9.1 and §10):
 * - 8-byte IVs (cenc, cens) count up by one per sample: the counter block is IV‖block
 *   number, so distinct IVs never share keystream.
 * - 16-byte IVs for CTR count up by the sample's block count, so the counter ranges of two
 *   samples never overlap.
 * - cbc1: 16-byte IVs. Random per sample by default (CBC wants unpredictable IVs); from
 *   --iv they count up by one per sample, for reproducible output.
 * - cbcs: one constant IV, written to 'tenc' (§10.4.1).
 * The start is random unless the user gave --iv.
 */
export class IvSequence {
  private counter: bigint;
  private readonly fixedStart: boolean;

  constructor(
    private readonly params: TrackProtectionParams,
    start: Uint8Array | undefined,
    private readonly random: RandomSource = cryptoRandom,
  ) {
    this.fixedStart = start !== undefined;
    const size = params.perSampleIvSize === 0 ? 16 : params.perSampleIvSize;
    this.counter = toBigInt(start ?? random(size));
  }

  /** The constant IV of a cbcs track (16 bytes), or undefined for per-sample IVs. */
  get constantIv(): Uint8Array | undefined {
    return this.params.perSampleIvSize === 0 ? toBytes(this.counter, 16) : undefined;
  }

  /** The stored IV (perSampleIvSize bytes, empty for a constant IV) of the next sample. */
  next(sampleSize: number): Uint8Array {
    const size = this.params.perSampleIvSize;
    if (size === 0) return new Uint8Array(0);
    if (this.params.scheme === 'cbc1' && !this.fixedStart) return this.random(16);
    const iv = toBytes(this.counter, size);
    const step =
      size === 16 && this.params.scheme !== 'cbc1'
        ? BigInt(Math.max(1, Math.ceil(sampleSize / BLOCK)))
        : 1n;
    this.counter = (this.counter + step) & (size === 8 ? MASK_64 : MASK_128);
    return iv;
  }
}

/** A stored IV as the 16 bytes a SampleBatch wants: 8-byte IVs right-padded with zeros (§9.1). */
export function batchIv(stored: Uint8Array, constantIv: Uint8Array | undefined): Uint8Array {
  const out = new Uint8Array(16);
  out.set(stored.length > 0 ? stored : (constantIv ?? out));
  return out;
}

function toBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function toBytes(v: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = v;
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}
