/**
 * Test helpers for the sample ciphers: an independent ISO/IEC 23001-7 reference built from
 * single AES blocks (ECB, one block per call, counters built by hand) and a generator of
 * random sample batches. Deliberately naive: it shares no code with either cipher.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomInt } from 'node:crypto';

import type { CencScheme, SampleBatch } from '../../../src/media/sample-crypto.js';

const B = 16;

/** AES-128 on single blocks. */
class BlockAes {
  private readonly enc;
  private readonly dec;
  constructor(key: Uint8Array) {
    this.enc = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
    this.dec = createDecipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  }
  encrypt(block: Uint8Array): Uint8Array {
    return new Uint8Array(this.enc.update(block));
  }
  decrypt(block: Uint8Array): Uint8Array {
    return new Uint8Array(this.dec.update(block));
  }
}

/** The counter block for keystream block `n`: high 64 bits of the IV, low 64 bits + n mod 2^64. */
export function counterBlock(iv: Uint8Array, n: bigint): Uint8Array {
  const out = Uint8Array.from(iv.subarray(0, B));
  const view = new DataView(out.buffer);
  view.setBigUint64(8, (view.getBigUint64(8) + n) & ((1n << 64n) - 1n));
  return out;
}

function xorInto(dst: Uint8Array, src: Uint8Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] = (dst[i] ?? 0) ^ (src[i] ?? 0);
}

/** The protected ranges of a sample as [start, length] within the sample. */
function protectedRanges(batch: SampleBatch, i: number): Array<[number, number]> {
  const s = batch.samples.subarray(i * 4, i * 4 + 4);
  const [, size = 0, first = 0, count = 0] = s;
  if (count === 0) return [[0, size]];
  const ranges: Array<[number, number]> = [];
  let pos = 0;
  for (let k = first; k < first + count; k++) {
    pos += batch.subsamples[2 * k] ?? 0;
    const prot = batch.subsamples[2 * k + 1] ?? 0;
    ranges.push([pos, prot]);
    pos += prot;
  }
  return ranges;
}

/** Offsets (within a range) of its pattern-encrypted whole blocks. */
function cryptBlocks(len: number, crypt: number, skip: number): number[] {
  const blocks = Math.floor(len / B);
  const out: number[] = [];
  for (let b = 0; b < blocks; b++) {
    if (skip === 0 || b % (crypt + skip) < crypt) out.push(b * B);
  }
  return out;
}

function cbcBlocks(aes: BlockAes, iv: Uint8Array, blocks: Uint8Array[], encrypt: boolean): void {
  let chain = Uint8Array.from(iv.subarray(0, B));
  for (const block of blocks) {
    if (encrypt) {
      xorInto(block, chain);
      block.set(aes.encrypt(block));
      chain = Uint8Array.from(block);
    } else {
      const next = Uint8Array.from(block);
      block.set(aes.decrypt(block));
      xorInto(block, chain);
      chain = next;
    }
  }
}

function referenceSample(
  aes: BlockAes,
  sample: Uint8Array,
  iv: Uint8Array,
  ranges: Array<[number, number]>,
  batch: SampleBatch,
  encrypt: boolean,
): void {
  const { cryptByteBlock: crypt, skipByteBlock: skip } = batch;
  switch (batch.scheme) {
    case 'cenc': {
      // The protected bytes of the sample, concatenated, XOR one keystream.
      let j = 0;
      for (const [start, len] of ranges) {
        for (let k = 0; k < len; k++, j++) {
          const ks = aes.encrypt(counterBlock(iv, BigInt(Math.floor(j / B))));
          sample[start + k] = (sample[start + k] ?? 0) ^ (ks[j % B] ?? 0);
        }
      }
      return;
    }
    case 'cens': {
      let n = 0n;
      for (const [start, len] of ranges) {
        for (const off of cryptBlocks(len, crypt, skip)) {
          xorInto(
            sample.subarray(start + off, start + off + B),
            aes.encrypt(counterBlock(iv, n++)),
          );
        }
      }
      return;
    }
    case 'cbc1': {
      const blocks = ranges.flatMap(([start, len]) =>
        cryptBlocks(len, 0, 0).map((off) => sample.subarray(start + off, start + off + B)),
      );
      cbcBlocks(aes, iv, blocks, encrypt);
      return;
    }
    case 'cbcs':
      for (const [start, len] of ranges) {
        const blocks = cryptBlocks(len, crypt, skip).map((off) =>
          sample.subarray(start + off, start + off + B),
        );
        cbcBlocks(aes, iv, blocks, encrypt);
      }
  }
}

/** Transforms `data` in place by the reference rules. */
export function referenceCrypt(
  key: Uint8Array,
  data: Uint8Array,
  batch: SampleBatch,
  encrypt: boolean,
): void {
  const aes = new BlockAes(key);
  for (let i = 0; i < batch.samples.length / 4; i++) {
    const offset = batch.samples[i * 4] ?? 0;
    const size = batch.samples[i * 4 + 1] ?? 0;
    const iv = batch.ivs.subarray(i * B, i * B + B);
    referenceSample(
      aes,
      data.subarray(offset, offset + size),
      iv,
      protectedRanges(batch, i),
      batch,
      encrypt,
    );
  }
}

export interface RandomBatchOptions {
  scheme: CencScheme;
  /** Force full-sample (no subsamples) or subsample maps; random when omitted. */
  fullSample?: boolean;
  maxSamples?: number;
  maxSampleSize?: number;
}

function randomIv(): Uint8Array {
  const iv = new Uint8Array(B);
  iv.set(randomBytes(randomInt(2) === 0 ? 8 : 16)); // 8-byte IVs are zero-padded (§9.1)
  if (randomInt(4) === 0) {
    // Put the low 64 bits a few blocks before the wrap.
    new DataView(iv.buffer).setBigUint64(8, (1n << 64n) - BigInt(1 + randomInt(40)));
  }
  return iv;
}

/** Appends random [clear, protected] pairs covering at most `size`; returns how many. */
function randomSubsamples(size: number, out: number[]): number {
  const count = 1 + randomInt(5);
  let left = size;
  for (let k = 0; k < count; k++) {
    const clear = randomInt(Math.min(left, 64) + 1);
    left -= clear;
    const last = k === count - 1 && randomInt(3) > 0;
    const prot = last ? left : randomInt(left + 1);
    left -= prot;
    out.push(clear, prot);
  }
  return count;
}

/** A random valid batch and clear data for it: samples with gaps, maps, patterns and IVs. */
export function randomBatch(opts: RandomBatchOptions): { data: Uint8Array; batch: SampleBatch } {
  const n = 1 + randomInt(opts.maxSamples ?? 6);
  const samples: number[] = [];
  const subsamples: number[] = [];
  const ivs = new Uint8Array(n * B);
  let offset = randomInt(8);
  for (let i = 0; i < n; i++) {
    const size = randomInt((opts.maxSampleSize ?? 600) + 1);
    const full = opts.fullSample ?? randomInt(3) === 0;
    const first = subsamples.length / 2;
    const count = full ? 0 : randomSubsamples(size, subsamples);
    samples.push(offset, size, first, count);
    ivs.set(randomIv(), i * B);
    offset += size + randomInt(8);
  }
  const patterned = opts.scheme === 'cens' || opts.scheme === 'cbcs';
  const crypt = patterned ? randomInt(16) : 0;
  const skip = patterned && crypt > 0 ? randomInt(16) : 0;
  const batch: SampleBatch = {
    scheme: opts.scheme,
    cryptByteBlock: crypt,
    skipByteBlock: skip,
    samples: Uint32Array.from(samples),
    ivs,
    subsamples: Uint32Array.from(subsamples),
  };
  return { data: new Uint8Array(randomBytes(offset + randomInt(8))), batch };
}

export const SCHEMES: readonly CencScheme[] = ['cenc', 'cbc1', 'cens', 'cbcs'];

export function hex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}
