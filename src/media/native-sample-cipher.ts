/**
 * The sample ciphers on the C++ addon (native/cenc*.cc): AES through Node's OpenSSL, one
 * call per batch, in place, sync or on a libuv worker. TS checks types and the pattern and
 * fills defaults; the addon validates every offset and length itself before touching data.
 */
import { CencCipherBinding, nativeAvailable } from '../native/binding.js';
import { checkContentKey, jsCipherFactory, normalizeSampleBatch } from './js-sample-cipher.js';
import type { SampleBatch, SampleCipher, SampleCipherFactory } from './sample-crypto.js';

class NativeSampleCipher implements SampleCipher {
  private readonly binding: CencCipherBinding;

  constructor(key: Uint8Array) {
    checkContentKey(key);
    this.binding = new CencCipherBinding(key);
  }

  decryptSync(data: Uint8Array, batch: SampleBatch): void {
    this.binding.decryptSync(data, normalizeSampleBatch(data, batch));
  }

  async decrypt(data: Uint8Array, batch: SampleBatch): Promise<void> {
    await this.binding.decrypt(data, normalizeSampleBatch(data, batch));
  }

  encryptSync(data: Uint8Array, batch: SampleBatch): void {
    this.binding.encryptSync(data, normalizeSampleBatch(data, batch));
  }

  async encrypt(data: Uint8Array, batch: SampleBatch): Promise<void> {
    await this.binding.encrypt(data, normalizeSampleBatch(data, batch));
  }

  close(): void {
    this.binding.close();
  }
}

/**
 * Sample ciphers on the native addon. `create` throws NATIVE_LOAD_FAILED (with the fixes)
 * when the addon cannot be loaded; see `nativeAvailable()` in src/native/binding.ts.
 */
export const nativeCipherFactory: SampleCipherFactory = {
  name: 'native',
  create: (key: Uint8Array): SampleCipher => new NativeSampleCipher(key),
};

/** The native factory when the addon loads, else the node:crypto one (fails soft). */
export function preferredCipherFactory(): SampleCipherFactory {
  return nativeAvailable() ? nativeCipherFactory : jsCipherFactory;
}
