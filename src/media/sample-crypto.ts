/**
 * The contract between the MP4 layer and whatever does the AES: the native addon
 * (src/native/binding.ts) or the node:crypto baseline (src/media/js-sample-cipher.ts).
 *
 * A batch describes every sample of one fragment that uses the same key, scheme and
 * pattern, as flat typed arrays so that it crosses into C++ without per-sample objects.
 * Data is transformed in place.
 */

/** The four ISO/IEC 23001-7 protection schemes, by their AES mode. PIFF 1.1 ('piff') is cenc. */
export type CencScheme = 'cenc' | 'cbcs' | 'cens' | 'cbc1';

/** Where the samples lie in a buffer and how each one is encrypted. */
export interface SampleBatch {
  readonly scheme: CencScheme;
  /** Pattern (ISO/IEC 23001-7 §9.6): encrypted 16-byte blocks per run. 0 with skip 0 = every block. */
  readonly cryptByteBlock: number;
  /** Pattern: clear 16-byte blocks after each encrypted run. */
  readonly skipByteBlock: number;
  /**
   * Four uint32 per sample: byte offset of the sample in `data`, its size, the index of its
   * first subsample pair in `subsamples`, and its subsample count (0 = whole sample protected).
   */
  readonly samples: Uint32Array;
  /** 16 bytes per sample: its IV, right-padded with zeros when the IV is 8 bytes (§9.1). */
  readonly ivs: Uint8Array;
  /** Two uint32 per subsample: BytesOfClearData, BytesOfProtectedData. */
  readonly subsamples: Uint32Array;
}

/** AES for one content key. Implementations keep one cipher context per key and reuse it. */
export interface SampleCipher {
  /** Decrypts every sample of the batch in place, on the caller's buffer. Throws a coded error on a bad map. */
  decryptSync(data: Uint8Array, batch: SampleBatch): void;
  /** Same as decryptSync, on a worker thread. `data` must not be touched until it settles. */
  decrypt(data: Uint8Array, batch: SampleBatch): Promise<void>;
  /** Encrypts in place (the packager's direction). */
  encryptSync(data: Uint8Array, batch: SampleBatch): void;
  /** Encrypts in place on a worker thread. */
  encrypt(data: Uint8Array, batch: SampleBatch): Promise<void>;
  /** Frees the cipher contexts; waits for nothing, but in-flight async calls keep it alive. */
  close(): void;
}

/** Creates ciphers for 16-byte AES-128 keys. */
export interface SampleCipherFactory {
  readonly name: string;
  create(key: Uint8Array): SampleCipher;
}
