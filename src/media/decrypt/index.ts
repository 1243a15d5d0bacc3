/**
 * CENC/PIFF decryption of ISO BMFF files: fragmented ones streamed box by box, flat ones
 * chunk by chunk, into a clear MP4 with original sample entries and fixed offsets.
 */
export { decryptFile, decryptBytes, type DecryptFileOptions } from './decrypt-file.js';
export {
  decryptSources,
  type DecryptOptions,
  type DecryptReport,
  type DecryptedTrack,
} from './decrypt-job.js';
export { KeyRing, type ContentKey } from './key-ring.js';
export {
  entryScheme,
  trackCryptoDefaults,
  declaredKids,
  type SampleCrypto,
} from './track-crypto.js';
export { wasEncrypted, checkForEntry, type SampleCheck, type EncryptedMap } from './key-check.js';
