/**
 * The ISO/IEC 23001-7 sample ciphers on node:crypto alone: the JS-only baseline for the
 * benchmark, the fallback when the addon cannot load, and the oracle the native tests
 * compare against. It validates the same way and throws the same codes as the addon.
 */
import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto';

import { kwError } from '../errors/index.js';
import type {
  CencScheme,
  SampleBatch,
  SampleCipher,
  SampleCipherFactory,
} from './sample-crypto.js';

const BLOCK = 16;
const IV_BYTES = 16;
const SAMPLE_FIELDS = 4;
const MAX_PATTERN = 15; // 4-bit fields in 'tenc' (ISO/IEC 23001-7 §8.2)
const SCHEMES: readonly CencScheme[] = ['cenc', 'cbcs', 'cens', 'cbc1'];
const LOW64 = (1n << 64n) - 1n;

/** Throws NATIVE_BAD_KEY unless `key` is a 16-byte AES-128 key. */
export function checkContentKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== 16) {
    throw kwError('NATIVE_BAD_KEY', 'an AES-128 key is a 16-byte Uint8Array', {
      length: key instanceof Uint8Array ? key.length : null,
    });
  }
}

function usesPattern(scheme: CencScheme): boolean {
  return scheme === 'cens' || scheme === 'cbcs';
}

function checkPattern(batch: SampleBatch): void {
  const fields = [batch.cryptByteBlock, batch.skipByteBlock];
  if (fields.some((n) => !Number.isInteger(n) || n < 0 || n > MAX_PATTERN)) {
    throw kwError('NATIVE_BAD_PATTERN', `pattern ${fields.join(':')} exceeds the 4-bit fields`);
  }
  // 0:N would encrypt nothing; Chromium and Bento4 read it differently, so it is refused.
  if (usesPattern(batch.scheme) && batch.cryptByteBlock === 0 && batch.skipByteBlock !== 0) {
    throw kwError('NATIVE_BAD_PATTERN', `pattern 0:${batch.skipByteBlock} encrypts no block`);
  }
}

function checkArrays(data: Uint8Array, batch: SampleBatch): void {
  const typed =
    data instanceof Uint8Array &&
    batch.samples instanceof Uint32Array &&
    batch.ivs instanceof Uint8Array &&
    batch.subsamples instanceof Uint32Array;
  if (!typed)
    throw kwError('NATIVE_BAD_ARGUMENT', 'data, samples, ivs or subsamples has the wrong type');
  if (batch.samples.length % SAMPLE_FIELDS !== 0) {
    throw kwError(
      'NATIVE_BAD_ARGUMENT',
      `samples length ${batch.samples.length} is not a multiple of 4`,
    );
  }
  if (batch.subsamples.length % 2 !== 0) {
    throw kwError('NATIVE_BAD_ARGUMENT', `subsamples length ${batch.subsamples.length} is odd`);
  }
  const count = batch.samples.length / SAMPLE_FIELDS;
  if (batch.ivs.length < count * IV_BYTES) {
    throw kwError(
      'MEDIA_BAD_IV',
      `ivs holds ${batch.ivs.length} bytes, ${count} samples need 16 each`,
    );
  }
}

/**
 * The per-batch checks that cost O(1): types, scheme, pattern, array lengths. Returns the
 * batch with defaults filled: 'cenc' and 'cbc1' have no pattern (§9.6), so theirs reads 0:0.
 */
export function normalizeSampleBatch(data: Uint8Array, batch: SampleBatch): SampleBatch {
  if (!SCHEMES.includes(batch.scheme)) {
    throw kwError('MEDIA_UNKNOWN_SCHEME', `unknown protection scheme '${String(batch.scheme)}'`);
  }
  checkPattern(batch);
  checkArrays(data, batch);
  if (usesPattern(batch.scheme) || (batch.cryptByteBlock === 0 && batch.skipByteBlock === 0)) {
    return batch;
  }
  return { ...batch, cryptByteBlock: 0, skipByteBlock: 0 };
}

function checkSubsamples(batch: SampleBatch, index: number, size: number): void {
  const { samples, subsamples } = batch;
  const first = samples[index * SAMPLE_FIELDS + 2] ?? 0;
  const count = samples[index * SAMPLE_FIELDS + 3] ?? 0;
  if (first + count > subsamples.length / 2) {
    throw kwError(
      'NATIVE_BAD_ARGUMENT',
      `subsamples ${first}+${count} lie outside the subsample array`,
      { sample: index },
    );
  }
  let covered = 0; // below 2^34, exact in a double
  for (let k = first; k < first + count; k++) {
    covered += (subsamples[2 * k] ?? 0) + (subsamples[2 * k + 1] ?? 0);
    if (covered > size) {
      throw kwError(
        'MEDIA_SUBSAMPLE_OVERFLOW',
        `subsamples cover ${covered}+ bytes of a ${size}-byte sample`,
        { sample: index },
      );
    }
  }
}

/**
 * Validates the whole batch against `data` before any byte is touched, with the addon's
 * rules and codes: every sample inside `data`, its subsample pairs inside `subsamples`, and
 * their sum at most the sample size (the rest of the sample stays clear, as in Bento4;
 * Chromium requires equality).
 */
export function validateSampleBatch(data: Uint8Array, batch: SampleBatch): SampleBatch {
  const normalized = normalizeSampleBatch(data, batch);
  const { samples } = normalized;
  for (let i = 0; i < samples.length / SAMPLE_FIELDS; i++) {
    const offset = samples[i * SAMPLE_FIELDS] ?? 0;
    const size = samples[i * SAMPLE_FIELDS + 1] ?? 0;
    if (offset + size > data.length) {
      throw kwError(
        'MEDIA_SAMPLE_OUT_OF_RANGE',
        `sample bytes ${offset}..${offset + size} lie outside ${data.length} bytes of data`,
        { sample: i },
      );
    }
    checkSubsamples(normalized, i, size);
  }
  return normalized;
}

/**
 * An AES-CTR keystream over node:crypto with CENC's counter: the low 64 bits of the counter
 * block wrap without carrying into the high 64 (OpenSSL would carry), so the cipher is
 * recreated at the wrap.
 */
class CtrKeystream {
  private high: bigint;
  private low: bigint;
  private byteInBlock = 0;
  private cipher: Cipher;

  constructor(
    private readonly key: Uint8Array,
    iv: Uint8Array,
  ) {
    const view = new DataView(iv.buffer, iv.byteOffset, IV_BYTES);
    this.high = view.getBigUint64(0);
    this.low = view.getBigUint64(8);
    this.cipher = this.newCipher();
  }

  /** XORs the next `bytes.length` keystream bytes into `bytes`. */
  xor(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const toWrap = (LOW64 - this.low + 1n) * 16n - BigInt(this.byteInBlock);
      const n = Number(BigInt(bytes.length - done) < toWrap ? BigInt(bytes.length - done) : toWrap);
      const part = bytes.subarray(done, done + n);
      part.set(this.cipher.update(part));
      const consumed = this.byteInBlock + n;
      this.low = (this.low + BigInt(Math.floor(consumed / BLOCK))) & LOW64;
      this.byteInBlock = consumed % BLOCK;
      done += n;
      if (BigInt(n) === toWrap) this.cipher = this.newCipher();
    }
  }

  private newCipher(): Cipher {
    const block = new Uint8Array(IV_BYTES);
    const view = new DataView(block.buffer);
    view.setBigUint64(0, this.high);
    view.setBigUint64(8, this.low);
    return createCipheriv('aes-128-ctr', this.key, block);
  }
}

/** Whole-block AES-CBC whose chain continues across calls. */
function cbcChain(key: Uint8Array, iv: Uint8Array, encrypt: boolean): Cipher | Decipher {
  const c = encrypt
    ? createCipheriv('aes-128-cbc', key, iv.subarray(0, IV_BYTES))
    : createDecipheriv('aes-128-cbc', key, iv.subarray(0, IV_BYTES));
  return c.setAutoPadding(false);
}

/**
 * Visits the encrypted runs of the §9.6 pattern in a protected range of `blocks` whole
 * blocks; a last run shorter than `crypt` blocks is still encrypted (§10.4.2, as Chromium
 * and Bento4 do). 0:0 and N:0 mean every block.
 */
function forEachCryptRun(
  blocks: number,
  crypt: number,
  skip: number,
  visit: (start: number, bytes: number) => void,
): void {
  if (skip === 0) {
    if (blocks > 0) visit(0, blocks * BLOCK);
    return;
  }
  for (let b = 0; b < blocks; b += crypt + skip) {
    visit(b * BLOCK, Math.min(crypt, blocks - b) * BLOCK);
  }
}

/** One scheme applied to the protected ranges of one sample, in order. */
class SampleTransform {
  private ctr: CtrKeystream | undefined;
  private cbc: Cipher | Decipher | undefined;

  constructor(
    private readonly key: Uint8Array,
    private readonly batch: SampleBatch,
    private readonly encrypt: boolean,
    private readonly iv: Uint8Array,
  ) {
    // One keystream (cenc, cens) or one chain (cbc1) per sample; cbcs restarts per range.
    if (batch.scheme === 'cenc' || batch.scheme === 'cens') this.ctr = new CtrKeystream(key, iv);
    if (batch.scheme === 'cbc1') this.cbc = cbcChain(key, iv, encrypt);
  }

  /** Transforms one protected range in place. */
  range(bytes: Uint8Array): void {
    const wholeBlocks = bytes.length - (bytes.length % BLOCK);
    switch (this.batch.scheme) {
      case 'cenc': // byte-granular, a trailing partial block included
        this.ctr?.xor(bytes);
        return;
      case 'cbc1': // a trailing partial block stays clear
        this.crypt(this.cbc, bytes.subarray(0, wholeBlocks));
        return;
      case 'cbcs':
        if (wholeBlocks > 0) this.cbc = cbcChain(this.key, this.iv, this.encrypt);
        this.pattern(bytes);
        return;
      case 'cens':
        this.pattern(bytes);
    }
  }

  /** Gathers the encrypted runs, transforms them in one call, scatters them back. */
  private pattern(bytes: Uint8Array): void {
    const { cryptByteBlock: crypt, skipByteBlock: skip } = this.batch;
    const blocks = Math.floor(bytes.length / BLOCK);
    const runs: Array<[number, number]> = [];
    let total = 0;
    forEachCryptRun(blocks, crypt, skip, (start, n) => {
      runs.push([start, n]);
      total += n;
    });
    if (total === 0) return;
    // A single run starts at 0 and needs no copy.
    const scattered = runs.length > 1;
    const gathered = scattered ? Buffer.allocUnsafe(total) : bytes.subarray(0, total);
    if (scattered) copyRuns(runs, (src, at, n) => gathered.set(bytes.subarray(src, src + n), at));
    if (this.ctr) this.ctr.xor(gathered);
    else this.crypt(this.cbc, gathered);
    if (scattered) copyRuns(runs, (src, at, n) => bytes.set(gathered.subarray(at, at + n), src));
  }

  private crypt(cbc: Cipher | Decipher | undefined, blocks: Uint8Array): void {
    if (cbc && blocks.length > 0) blocks.set(cbc.update(blocks));
  }
}

function copyRuns(
  runs: Array<[number, number]>,
  copy: (src: number, at: number, n: number) => void,
): void {
  let at = 0;
  for (const [src, n] of runs) {
    copy(src, at, n);
    at += n;
  }
}

/** Sample `i` of a validated batch; bytes after its last subsample stay clear. */
function transformSample(t: SampleTransform, data: Uint8Array, b: SampleBatch, i: number): void {
  const at = i * SAMPLE_FIELDS;
  const [offset = 0, size = 0, first = 0, count = 0] = b.samples.subarray(at, at + SAMPLE_FIELDS);
  const sample = data.subarray(offset, offset + size);
  if (count === 0) {
    t.range(sample);
    return;
  }
  let pos = 0;
  for (let k = first; k < first + count; k++) {
    pos += b.subsamples[2 * k] ?? 0;
    const prot = b.subsamples[2 * k + 1] ?? 0;
    t.range(sample.subarray(pos, pos + prot));
    pos += prot;
  }
}

function transformBatch(
  key: Uint8Array,
  data: Uint8Array,
  batch: SampleBatch,
  encrypt: boolean,
): void {
  const b = validateSampleBatch(data, batch);
  for (let i = 0; i < b.samples.length / SAMPLE_FIELDS; i++) {
    const iv = b.ivs.subarray(i * IV_BYTES, (i + 1) * IV_BYTES);
    transformSample(new SampleTransform(key, b, encrypt, iv), data, b, i);
  }
}

/**
 * A SampleCipher on node:crypto. Its async methods run on the JS thread: node:crypto has no
 * batch call to put on a worker.
 */
class JsSampleCipher implements SampleCipher {
  private key: Uint8Array | undefined;

  constructor(key: Uint8Array) {
    checkContentKey(key);
    this.key = Uint8Array.from(key);
  }

  decryptSync(data: Uint8Array, batch: SampleBatch): void {
    transformBatch(this.openKey(), data, batch, false);
  }

  async decrypt(data: Uint8Array, batch: SampleBatch): Promise<void> {
    this.decryptSync(data, batch);
  }

  encryptSync(data: Uint8Array, batch: SampleBatch): void {
    transformBatch(this.openKey(), data, batch, true);
  }

  async encrypt(data: Uint8Array, batch: SampleBatch): Promise<void> {
    this.encryptSync(data, batch);
  }

  close(): void {
    this.key?.fill(0);
    this.key = undefined;
  }

  private openKey(): Uint8Array {
    if (!this.key) throw kwError('NATIVE_CLOSED', 'the cipher was closed');
    return this.key;
  }
}

/** Sample ciphers on node:crypto only: the JS baseline and test oracle. */
export const jsCipherFactory: SampleCipherFactory = {
  name: 'node:crypto',
  create: (key: Uint8Array): SampleCipher => new JsSampleCipher(key),
};
