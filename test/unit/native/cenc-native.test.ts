/**
 * Contract tests of the addon's CencCipher through src/native/binding.ts and the native
 * factory: known-answer vectors, the 64-bit counter wrap, async lifecycle and a fuzz loop.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { Worker } from 'node:worker_threads';

import { describe, expect, it } from 'vitest';

import { ERRORS, isKeywardenError, KeywardenError } from '../../../src/errors/index.js';
import { nativeCipherFactory } from '../../../src/media/native-sample-cipher.js';
import type { CencScheme, SampleBatch } from '../../../src/media/sample-crypto.js';
import {
  CencCipherBinding,
  describeLoadFailure,
  fromNativeError,
  loadAddon,
  nativeAvailable,
  nativeInfo,
} from '../../../src/native/binding.js';
import { counterBlock, hex, randomBatch, referenceCrypt, SCHEMES } from './cenc-reference.js';

// NIST SP 800-38A, appendix F.
const NIST_KEY = hex('2b7e151628aed2a6abf7158809cf4f3c');
const NIST_PLAIN = hex(`6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
  30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710`);
// Its low 64 bits do not wrap within 4 blocks.
const NIST_CTR_COUNTER = hex('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');
const NIST_CTR_CIPHER = hex(`874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff
  5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee`);
const NIST_CBC_IV = hex('000102030405060708090a0b0c0d0e0f');
const NIST_CBC_CIPHER = hex(`7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
  73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7`);

function fullSample(scheme: CencScheme, size: number, iv: Uint8Array): SampleBatch {
  return {
    scheme,
    cryptByteBlock: 0,
    skipByteBlock: 0,
    samples: Uint32Array.from([0, size, 0, 0]),
    ivs: Uint8Array.from(iv),
    subsamples: new Uint32Array(0),
  };
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

describe('addon loading', () => {
  it('loads and reports its OpenSSL', () => {
    expect(nativeAvailable()).toBe(true);
    const info = nativeInfo();
    expect(info.openssl).toMatch(/^OpenSSL \d/);
    expect([true, false, null]).toContain(info.cpuAes);
    expect(info.addonPath).toMatch(/keywarden\.node$/);
    expect(typeof loadAddon().CencCipher).toBe('function');
  });

  it('explains a failed load with the fixes', () => {
    const text = describeLoadFailure('/opt/kw', new Error('No native build was found\nmore'));
    expect(text).toContain('npm run build:native');
    expect(text).toContain('python3');
    expect(text).toContain('No native build was found');
    expect(text).not.toContain('more');
  });

  it('maps native errors to the catalogue', () => {
    const coded = Object.assign(new Error('x'), { code: 'MEDIA_BAD_IV', sample: 3 });
    expect(fromNativeError(coded)).toMatchObject({
      code: 'MEDIA_BAD_IV',
      number: 7011,
      details: { sample: 3 },
    });
    expect(fromNativeError(new TypeError('y')).code).toBe('NATIVE_BAD_ARGUMENT');
    expect(fromNativeError(Object.assign(new Error('z'), { code: 'NOT_A_CODE' })).code).toBe(
      'NATIVE_BAD_ARGUMENT',
    );
  });
});

describe('NIST SP 800-38A known answers', () => {
  it('AES-128 CTR F.5.1/F.5.2 as a cenc full sample', () => {
    const cipher = nativeCipherFactory.create(NIST_KEY);
    const data = Uint8Array.from(NIST_PLAIN);
    cipher.encryptSync(data, fullSample('cenc', 64, NIST_CTR_COUNTER));
    expect(same(data, NIST_CTR_CIPHER)).toBe(true);
    cipher.decryptSync(data, fullSample('cenc', 64, NIST_CTR_COUNTER));
    expect(same(data, NIST_PLAIN)).toBe(true);
  });

  it('AES-128 CBC F.2.1/F.2.2 as cbc1 and as cbcs 0:0 full samples', () => {
    const cipher = nativeCipherFactory.create(NIST_KEY);
    for (const scheme of ['cbc1', 'cbcs'] as const) {
      const data = Uint8Array.from(NIST_PLAIN);
      cipher.encryptSync(data, fullSample(scheme, 64, NIST_CBC_IV));
      expect(same(data, NIST_CBC_CIPHER), scheme).toBe(true);
      cipher.decryptSync(data, fullSample(scheme, 64, NIST_CBC_IV));
      expect(same(data, NIST_PLAIN), scheme).toBe(true);
    }
  });

  it('cbc1 and cbcs keep a trailing partial block clear', () => {
    const cipher = nativeCipherFactory.create(NIST_KEY);
    const data = new Uint8Array(72);
    data.set(NIST_PLAIN);
    data.fill(0xaa, 64);
    cipher.encryptSync(data, fullSample('cbcs', 72, NIST_CBC_IV));
    expect(same(data.subarray(0, 64), NIST_CBC_CIPHER)).toBe(true);
    expect(data.subarray(64).every((b) => b === 0xaa)).toBe(true);
  });

  it('CTR across subsamples continues the keystream byte by byte', () => {
    const cipher = nativeCipherFactory.create(NIST_KEY);
    // Protected ranges of 5, 23, 0 and 36 bytes: together the 64 NIST bytes.
    const clear = [3, 0, 9, 1];
    const prot = [5, 23, 0, 36];
    const parts: number[] = [];
    const data = new Uint8Array(64 + 13);
    let pos = 0;
    let p = 0;
    for (let k = 0; k < 4; k++) {
      data.fill(0xee, pos, pos + (clear[k] ?? 0));
      pos += clear[k] ?? 0;
      data.set(NIST_PLAIN.subarray(p, p + (prot[k] ?? 0)), pos);
      pos += prot[k] ?? 0;
      p += prot[k] ?? 0;
      parts.push(clear[k] ?? 0, prot[k] ?? 0);
    }
    cipher.encryptSync(data, {
      ...fullSample('cenc', data.length, NIST_CTR_COUNTER),
      samples: Uint32Array.from([0, data.length, 0, 4]),
      subsamples: Uint32Array.from(parts),
    });
    const gathered = Buffer.concat([
      data.subarray(3, 8),
      data.subarray(8, 31),
      data.subarray(41, 77),
    ]);
    expect(same(gathered, NIST_CTR_CIPHER)).toBe(true);
    expect(data[0]).toBe(0xee);
    expect(data[40]).toBe(0xee);
  });
});

describe('the 64-bit counter wrap', () => {
  const key = hex('000102030405060708090a0b0c0d0e0f');

  function keystreamByHand(iv: Uint8Array, bytes: number): Uint8Array {
    // Encrypting zeros with a reference built from single ECB blocks and explicit counters.
    const zeros = new Uint8Array(bytes);
    referenceCrypt(key, zeros, fullSample('cenc', bytes, iv), true);
    return zeros;
  }

  for (const before of [1n, 2n, 3n, 7n]) {
    it(`wraps the low 64 bits only, ${before} block(s) before the end`, () => {
      const iv = new Uint8Array(16).fill(0xff); // high 64 bits all ones: a carry would show
      new DataView(iv.buffer).setBigUint64(8, (1n << 64n) - before);
      const size = 16 * 10 + 5;
      const data = new Uint8Array(size);
      nativeCipherFactory.create(key).encryptSync(data, fullSample('cenc', size, iv));
      expect(same(data, keystreamByHand(iv, size))).toBe(true);
      // The block after the wrap uses counter ff..ff 00..00.
      const wrapped = counterBlock(iv, before);
      expect(Buffer.from(wrapped).toString('hex')).toBe('ffffffffffffffff0000000000000000');
    });
  }

  it('wraps in the middle of a partial block split across subsamples', () => {
    const iv = new Uint8Array(16);
    iv.set(randomBytes(8));
    new DataView(iv.buffer).setBigUint64(8, (1n << 64n) - 2n);
    const data = new Uint8Array(100);
    const batch: SampleBatch = {
      ...fullSample('cenc', 100, iv),
      samples: Uint32Array.from([0, 100, 0, 3]),
      // The wrap (keystream byte 32) falls in range 2; range 3 starts mid-block after it.
      subsamples: Uint32Array.from([2, 7, 1, 27, 0, 60]),
    };
    nativeCipherFactory.create(key).encryptSync(data, batch);
    const ks = keystreamByHand(iv, 94);
    const gathered = Buffer.concat([
      data.subarray(2, 9),
      data.subarray(10, 37),
      data.subarray(37, 97),
    ]);
    expect(same(gathered, ks)).toBe(true);
  });

  it('cens counts only encrypted blocks across the wrap', () => {
    const iv = new Uint8Array(16).fill(0x42);
    new DataView(iv.buffer).setBigUint64(8, (1n << 64n) - 1n);
    const batch: SampleBatch = {
      ...fullSample('cens', 320, iv),
      cryptByteBlock: 1,
      skipByteBlock: 3,
    };
    const a = new Uint8Array(320);
    const b = new Uint8Array(320);
    nativeCipherFactory.create(key).encryptSync(a, batch);
    referenceCrypt(key, b, batch, true);
    expect(same(a, b)).toBe(true);
  });
});

describe('async lifecycle', () => {
  const key = randomBytes(16);

  it('runs many concurrent batches on one key and on several keys', async () => {
    const ciphers = [nativeCipherFactory.create(key), nativeCipherFactory.create(randomBytes(16))];
    const jobs = Array.from({ length: 64 }, (_, i) => {
      const scheme = SCHEMES[i % 4] ?? 'cenc';
      const cipher = ciphers[i % 2];
      const { data, batch } = randomBatch({ scheme, maxSamples: 8, maxSampleSize: 20_000 });
      return { data, batch, cipher, copy: Uint8Array.from(data) };
    });
    await Promise.all(jobs.map((j) => j.cipher?.encrypt(j.data, j.batch)));
    await Promise.all(jobs.map((j) => j.cipher?.decrypt(j.data, j.batch)));
    for (const j of jobs) expect(same(j.data, j.copy)).toBe(true);
  });

  it('survives close() while calls are pending, and finishes them', async () => {
    const cipher = nativeCipherFactory.create(key);
    const buffers = [new Uint8Array(8 << 20), new Uint8Array(8 << 20)];
    const batch = fullSample('cenc', 8 << 20, new Uint8Array(16));
    const pending = buffers.map((b) => cipher.encrypt(b, batch));
    cipher.close();
    await Promise.all(pending);
    const [data = new Uint8Array(0), other = new Uint8Array(0)] = buffers;
    expect(same(data, other) && data.some((b) => b !== 0)).toBe(true);
    expect(() => cipher.decryptSync(data, batch)).toThrow(
      expect.objectContaining({ code: 'NATIVE_CLOSED' }),
    );
    await expect(cipher.decrypt(data, batch)).rejects.toBeInstanceOf(KeywardenError);
  });

  it('keeps the caller frames on async errors', async () => {
    const binding = new CencCipherBinding(key);
    binding.close();
    const err: unknown = await binding
      .decrypt(new Uint8Array(1), fullSample('cenc', 1, new Uint8Array(16)))
      .catch((e: unknown) => e);
    expect(isKeywardenError(err, 'NATIVE_CLOSED')).toBe(true);
    expect(binding.closed).toBe(true);
    expect(err instanceof Error ? err.stack : '').toContain('cenc-native.test');
  });

  it('close() is idempotent', () => {
    const cipher = nativeCipherFactory.create(key);
    cipher.close();
    expect(() => cipher.close()).not.toThrow();
  });
});

describe('worker threads', () => {
  // Loads the addon in a worker, starts a large async decrypt, and reports; the main thread
  // then either waits for it or terminates the worker mid-call (env teardown).
  const script = `
    const { parentPort, workerData } = require('node:worker_threads');
    const addon = require(workerData.gypBuild)(workerData.root);
    const cipher = new addon.CencCipher(new Uint8Array(16));
    const size = 64 << 20;
    const batch = { scheme: 'cenc', cryptByteBlock: 0, skipByteBlock: 0,
      samples: Uint32Array.from([0, size, 0, 0]), ivs: new Uint8Array(16),
      subsamples: new Uint32Array(0) };
    const data = new Uint8Array(size);
    cipher.decrypt(data, batch).then(() => parentPort.postMessage('done'));
    parentPort.postMessage('started');
  `;

  function startWorker(): Worker {
    const root = new URL('../../../', import.meta.url).pathname;
    const gypBuild = new URL('../../../node_modules/node-gyp-build/index.js', import.meta.url)
      .pathname;
    return new Worker(script, { eval: true, workerData: { root, gypBuild } });
  }

  it('loads the addon in a worker thread and decrypts there', async () => {
    const worker = startWorker();
    const messages: string[] = [];
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: string) => {
        messages.push(m);
        if (m === 'done') resolve();
      });
      worker.on('error', reject);
    });
    await worker.terminate();
    expect(messages).toEqual(['started', 'done']);
  });

  it('survives terminating a worker while its async call runs', async () => {
    const worker = startWorker();
    await new Promise<void>((resolve) => worker.once('message', () => resolve()));
    await worker.terminate();
    // Still alive and working after the teardown.
    const cipher = nativeCipherFactory.create(new Uint8Array(16));
    await cipher.decrypt(new Uint8Array(32), fullSample('cenc', 32, new Uint8Array(16)));
  });
});

describe('fuzz: random and corrupted maps', () => {
  const CODES = new Set(Object.keys(ERRORS));

  function corrupt(batch: SampleBatch, dataLen: number): SampleBatch {
    const samples = Uint32Array.from(batch.samples);
    const subsamples = Uint32Array.from(batch.subsamples);
    const pick = randomInt(6);
    const wild = (): number =>
      [0, 1, 15, 16, 17, dataLen, dataLen + 1, 0x7fffffff, 0xffffffff, randomInt(2 ** 32)][
        randomInt(10)
      ] ?? 0;
    if (pick === 0 && samples.length) samples[randomInt(samples.length)] = wild();
    if (pick === 1 && subsamples.length) subsamples[randomInt(subsamples.length)] = wild();
    if (pick === 2)
      return { ...batch, samples, ivs: batch.ivs.subarray(0, randomInt(batch.ivs.length + 1)) };
    if (pick === 3)
      return { ...batch, cryptByteBlock: randomInt(20), skipByteBlock: randomInt(20) };
    if (pick === 4)
      return { ...batch, samples: samples.subarray(0, randomInt(samples.length + 1)) };
    return { ...batch, samples, subsamples };
  }

  it('never crashes: success, or a catalogued error with the data intact', async () => {
    const cipher = nativeCipherFactory.create(randomBytes(16));
    let failures = 0;
    for (let i = 0; i < 3000; i++) {
      const { data, batch } = randomBatch({
        scheme: SCHEMES[i % 4] ?? 'cenc',
        maxSamples: 5,
        maxSampleSize: 300,
      });
      const bad = randomInt(4) > 0 ? corrupt(batch, data.length) : batch;
      const before = Uint8Array.from(data);
      try {
        if (i % 10 === 0) await cipher.decrypt(data, bad);
        else cipher.decryptSync(data, bad);
      } catch (err) {
        failures++;
        expect(isKeywardenError(err) && CODES.has(err.code), String(err)).toBe(true);
        expect(same(data, before)).toBe(true);
      }
    }
    expect(failures).toBeGreaterThan(300);
  });
});
