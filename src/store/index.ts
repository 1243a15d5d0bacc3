/**
 * The device's persistent license store (issue 4). See {@link LicenseStore} and
 * docs/store.md.
 */
export {
  DEFAULT_COMPACT_AFTER_FRAMES,
  DEFAULT_MAX_LICENSE_BYTES,
  LicenseStore,
  STORE_FILES,
  type LicenseStoreOptions,
} from './license-store.js';
export {
  FileRollbackCounter,
  type FileRollbackCounterOptions,
  type RollbackCounter,
} from './rollback-counter.js';
export {
  MAX_CONTENT_ID_BYTES,
  MAX_ID_BYTES,
  MAX_KIDS,
  MAX_META_BYTES,
  type IndexEntry,
  type LicenseRecord,
  type LicenseState,
  type StoreProblem,
  type StoredLicense,
  type UsagePatch,
  type UsageState,
} from './types.js';
