/**
 * The only module that loads the C++ addon (native/*.cc). It types the native surface, loads
 * the addon lazily with node-gyp-build on first use, and turns native errors (plain Errors
 * with a string `code`) into catalogued {@link KeywardenError}s.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ERRORS, KeywardenError, kwError, type ErrorCode } from '../errors/index.js';

/** The batch the addon reads: the shape of `SampleBatch` (src/media/sample-crypto.ts). */
export interface NativeSampleBatch {
  readonly scheme: string;
  readonly cryptByteBlock: number;
  readonly skipByteBlock: number;
  readonly samples: Uint32Array;
  readonly ivs: Uint8Array;
  readonly subsamples: Uint32Array;
}

/** An instance of the addon's `CencCipher` class (native/cenc.h): one AES-128 key. */
export interface NativeCencCipher {
  /** Validates the whole map, then decrypts in place; throws a coded Error. */
  decryptSync(data: Uint8Array, batch: NativeSampleBatch): void;
  /** Validates the whole map, then encrypts in place; throws a coded Error. */
  encryptSync(data: Uint8Array, batch: NativeSampleBatch): void;
  /** Validates on the calling thread (throws), then decrypts on a libuv worker. */
  decrypt(data: Uint8Array, batch: NativeSampleBatch): Promise<void>;
  /** Validates on the calling thread (throws), then encrypts on a libuv worker. */
  encrypt(data: Uint8Array, batch: NativeSampleBatch): Promise<void>;
  /** Releases the key; in-flight calls keep their own reference to it. Idempotent. */
  close(): void;
  /** True after close(). */
  readonly closed: boolean;
}

/** What the addon reports about its crypto. */
export interface NativeCryptoInfo {
  /** OpenSSL_version(OPENSSL_VERSION) of the OpenSSL the addon runs on (Node's own). */
  readonly openssl: string;
  /** Whether the CPU has AES instructions (AES-NI, ARMv8 CE); null when unknown. */
  readonly cpuAes: boolean | null;
}

/** The addon's exports (native/addon.cc). */
export interface NativeAddon {
  readonly CencCipher: new (key: Uint8Array) => NativeCencCipher;
  cryptoInfo(): NativeCryptoInfo;
}

/** {@link NativeCryptoInfo} plus where the addon was loaded from. */
export interface NativeInfo extends NativeCryptoInfo {
  readonly addonPath: string | null;
}

type GypBuildLoader = ((root: string) => unknown) & { path?: (root: string) => string };

interface Loaded {
  readonly addon: NativeAddon;
  readonly root: string;
}

const requireFromHere = createRequire(import.meta.url);
/** The cached outcome of the first load: the addon, or the error every later call rethrows. */
let loadState: Loaded | KeywardenError | undefined;

/** The package root: the nearest directory above this file holding binding.gyp (src/ or dist/). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'binding.gyp'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    dir = parent;
  }
}

function isGypBuildLoader(value: unknown): value is GypBuildLoader {
  return typeof value === 'function';
}

function isNativeAddon(value: unknown): value is NativeAddon {
  if (typeof value !== 'object' || value === null) return false;
  return (
    'CencCipher' in value &&
    typeof value.CencCipher === 'function' &&
    'cryptoInfo' in value &&
    typeof value.cryptoInfo === 'function'
  );
}

/** The one readable diagnostic for a failed load, listing the fixes. */
export function describeLoadFailure(root: string, cause: unknown): string {
  const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  return [
    `the native addon could not be loaded from ${root} (${reason})`,
    'Fixes, in order:',
    '  1. build it: npm run build:native',
    '  2. install what the build needs: python3, make, g++ (apt-get install python3 make g++)',
    '  3. offline: set npm_config_nodedir to a Node.js install with include/node/node_api.h',
    `  4. after a Node.js upgrade (now ${process.version}, ABI ${process.versions.modules}): as 1`,
  ].join('\n');
}

function loadOnce(): Loaded | KeywardenError {
  const root = packageRoot();
  try {
    const loader: unknown = requireFromHere('node-gyp-build');
    if (!isGypBuildLoader(loader)) throw new Error('node-gyp-build did not export a loader');
    const addon = loader(root);
    if (!isNativeAddon(addon)) throw new Error('the addon lacks CencCipher/cryptoInfo exports');
    return { addon, root };
  } catch (cause) {
    return kwError('NATIVE_LOAD_FAILED', describeLoadFailure(root, cause), { root }, cause);
  }
}

function loadedAddon(): Loaded {
  loadState ??= loadOnce();
  if (loadState instanceof KeywardenError) throw loadState;
  return loadState;
}

/**
 * The addon, loaded on first call and cached. Throws NATIVE_LOAD_FAILED (also cached) with a
 * message listing the fixes when it cannot be loaded.
 */
export function loadAddon(): NativeAddon {
  return loadedAddon().addon;
}

/** True when the addon loads; for callers that fall back to the node:crypto cipher. */
export function nativeAvailable(): boolean {
  try {
    loadAddon();
    return true;
  } catch {
    return false;
  }
}

/** The addon's OpenSSL version, CPU AES support and file path. Loads the addon. */
export function nativeInfo(): NativeInfo {
  const { addon, root } = loadedAddon();
  const loader: unknown = requireFromHere('node-gyp-build');
  const where = isGypBuildLoader(loader) ? loader.path : undefined;
  return { ...addon.cryptoInfo(), addonPath: typeof where === 'function' ? where(root) : null };
}

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/**
 * Converts an error thrown by the addon into a KeywardenError. The addon sets `code` to a
 * catalogue name and `sample` to the offending sample index; anything else (a TypeError from
 * node-addon-api, say) becomes NATIVE_BAD_ARGUMENT.
 */
export function fromNativeError(err: unknown): KeywardenError {
  const code: unknown = err instanceof Error && 'code' in err ? err.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  const details: Record<string, unknown> = {};
  if (err instanceof Error && 'sample' in err && typeof err.sample === 'number') {
    details.sample = err.sample;
  }
  return kwError(isErrorCode(code) ? code : 'NATIVE_BAD_ARGUMENT', message, details, err);
}

/** Puts the caller's frames (captured before an async call) under an error raised later. */
function graftStack(error: KeywardenError, origin: Error): KeywardenError {
  const frames = origin.stack?.split('\n').slice(1).join('\n');
  if (frames) error.stack = `${error.name}: ${error.message}\n${frames}`;
  return error;
}

/**
 * A native CencCipher whose every failure is a KeywardenError. It passes batches through
 * unchanged: validation and defaults belong to src/media/native-sample-cipher.ts.
 */
export class CencCipherBinding {
  private readonly cipher: NativeCencCipher;

  /** @param key the 16-byte AES-128 content key (copied into the native key schedule) */
  constructor(key: Uint8Array) {
    const { CencCipher } = loadAddon();
    try {
      this.cipher = new CencCipher(key);
    } catch (err) {
      throw fromNativeError(err);
    }
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.cipher.closed;
  }

  /** Decrypts every sample of `batch` in `data`, in place, on this thread. */
  decryptSync(data: Uint8Array, batch: NativeSampleBatch): void {
    this.callSync(() => this.cipher.decryptSync(data, batch));
  }

  /** Encrypts every sample of `batch` in `data`, in place, on this thread. */
  encryptSync(data: Uint8Array, batch: NativeSampleBatch): void {
    this.callSync(() => this.cipher.encryptSync(data, batch));
  }

  /** Decrypts on a libuv worker thread; a bad map rejects before any byte changes. */
  decrypt(data: Uint8Array, batch: NativeSampleBatch): Promise<void> {
    return this.callAsync(() => this.cipher.decrypt(data, batch));
  }

  /** Encrypts on a libuv worker thread; a bad map rejects before any byte changes. */
  encrypt(data: Uint8Array, batch: NativeSampleBatch): Promise<void> {
    return this.callAsync(() => this.cipher.encrypt(data, batch));
  }

  /** Drops the key; calls still in flight finish with it, later calls throw NATIVE_CLOSED. */
  close(): void {
    this.cipher.close();
  }

  private callSync(run: () => void): void {
    try {
      run();
    } catch (err) {
      throw fromNativeError(err);
    }
  }

  private async callAsync(run: () => Promise<void>): Promise<void> {
    const origin = new Error();
    try {
      await run();
    } catch (err) {
      throw graftStack(fromNativeError(err), origin);
    }
  }
}
