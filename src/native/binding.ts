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

/** The addon's exports (native/addon.cc). The KMS ones are absent from addons built before them. */
export interface NativeAddon {
  readonly CencCipher: new (key: Uint8Array) => NativeCencCipher;
  cryptoInfo(): NativeCryptoInfo;
  readonly KmsDevice?: new (options: NativeKmsDeviceOptions) => NativeKmsDeviceHandle;
  kmsBuildInfo?(): KmsBuildInfo;
  parseUevent?(raw: Uint8Array): NativeUevent | null;
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
 * catalogue name, `sample` to the offending sample index and `path` to the scenario field at
 * fault; anything else (a TypeError from node-addon-api, say) becomes NATIVE_BAD_ARGUMENT.
 */
export function fromNativeError(err: unknown): KeywardenError {
  const code: unknown = err instanceof Error && 'code' in err ? err.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  const details: Record<string, unknown> = {};
  if (err instanceof Error && 'sample' in err && typeof err.sample === 'number') {
    details.sample = err.sample;
  }
  if (err instanceof Error && 'path' in err && typeof err.path === 'string') {
    details.path = err.path;
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

// ---------------------------------------------------------------------------------------------
// Output status over DRM/KMS (native/kms.*, native/uevent.*; docs/kms.md).

/** Connector types: the kernel's drm_connector_enum_list names ('9PinDIN' is the kernel's "DIN"). */
export type KmsConnectorType =
  | 'HDMI-A'
  | 'HDMI-B'
  | 'DVI-I'
  | 'DVI-D'
  | 'DVI-A'
  | 'DP'
  | 'eDP'
  | 'Composite'
  | 'SVIDEO'
  | 'Component'
  | '9PinDIN'
  | 'VGA'
  | 'LVDS'
  | 'DSI'
  | 'DPI'
  | 'TV'
  | 'Virtual'
  | 'Writeback'
  | 'SPI'
  | 'USB'
  | 'Unknown';

/** Every {@link KmsConnectorType}, in DRM_MODE_CONNECTOR_* order. */
export const KMS_CONNECTOR_TYPES: readonly KmsConnectorType[] = Object.freeze([
  'Unknown',
  'VGA',
  'DVI-I',
  'DVI-D',
  'DVI-A',
  'Composite',
  'SVIDEO',
  'LVDS',
  'Component',
  '9PinDIN',
  'DP',
  'HDMI-A',
  'HDMI-B',
  'TV',
  'eDP',
  'Virtual',
  'DSI',
  'DPI',
  'Writeback',
  'SPI',
  'USB',
]);

/** One connector as KMS reports it. */
export interface NativeKmsConnector {
  /** KMS connector object id. */
  readonly id: number;
  /** The kernel's name, e.g. 'HDMI-A-1' (type + '-' + typeIndex; 'DIN-1' for 9PinDIN). */
  readonly name: string;
  /** Connector type. */
  readonly type: KmsConnectorType;
  /** Index among connectors of the same type (1-based, as in the name). */
  readonly typeIndex: number;
  /** Connection status (load or hot-plug detection). */
  readonly connection: 'connected' | 'disconnected' | 'unknown';
  /** Drives a CRTC: it has a CRTC with a mode, not switched off (ACTIVE). */
  readonly active: boolean;
  /** The CRTC driving it; 0 when none. */
  readonly crtcId: number;
  /** The current mode of its CRTC; null when not driven or not known. */
  readonly mode: {
    /** Horizontal pixels. */
    readonly width: number;
    /** Vertical pixels. */
    readonly height: number;
    /** Refresh rate in Hz, to two decimals (59.94). */
    readonly refresh: number;
  } | null;
  /** HDCP state: "Content Protection"; 'unsupported' when the connector has no such property (vc4). */
  readonly contentProtection: 'unsupported' | 'undesired' | 'desired' | 'enabled';
  /** HDCP content type: "HDCP Content Type"; 'unsupported' when absent. */
  readonly hdcpContentType: 'unsupported' | 'type0' | 'type1';
  /**
   * What the driver knows of the sink's HDCP standing (revocation list, integrity).
   * libdrm: 'unknown' (KMS cannot tell); scripted: from the scenario.
   */
  readonly sink: 'unknown' | 'ok' | 'revoked' | 'tampered';
  /**
   * True when the driver exposes a CGMS-A property on the connector (analog output can assert
   * CGMS-A). libdrm: false (no standard property); scripted: from the scenario.
   */
  readonly cgmsA: boolean;
}

export interface NativeKmsSnapshot {
  readonly backend: 'libdrm' | 'scripted';
  readonly available: boolean;
  /** Why not available: 'built without libdrm', 'no DRM device (...)', 'drmModeGetResources failed: ...'. */
  readonly reason?: string;
  /** '/dev/dri/card0', 'scripted:<scenario name>', or '' when no device was found. */
  readonly device: string;
  /** Holds DRM master (can request HDCP). */
  readonly master: boolean;
  readonly connectors: readonly NativeKmsConnector[];
}

/** A drm uevent (kernel netlink format, or the scripted backend's identical bytes). */
export interface NativeUevent {
  readonly action: string;
  readonly devpath: string;
  readonly subsystem: string;
  readonly hotplug: boolean;
  readonly connector?: number;
  readonly property?: number;
  readonly seqnum?: number;
}

export interface KmsProtectionResult {
  readonly ok: boolean;
  /** Why not ok: 'not DRM master', '<name> has no "Content Protection" property ...', ... */
  readonly reason?: string;
  /** The state read back after the commit (or the current state when nothing was committed). */
  readonly contentProtection: NativeKmsConnector['contentProtection'];
}

export interface KmsDevice {
  /** The whole output state, read now (no probe). */
  snapshot(): NativeKmsSnapshot;
  /** Sets "Content Protection" Desired (and "HDCP Content Type") in one atomic commit; needs DRM master. */
  requestProtection(connectorId: number, contentType: 0 | 1): KmsProtectionResult;
  /** Sets "Content Protection" Undesired (when playback stops). */
  releaseProtection(connectorId: number): KmsProtectionResult;
  /** Delivers drm uevents on the JS thread. Throws UEVENT_FAILED when netlink is unavailable. Once per device. */
  watch(onEvent: (event: NativeUevent) => void): void;
  /** The watcher no longer keeps the process alive (before or after watch()). */
  unref(): void;
  /** The watcher keeps the process alive again (the default). */
  ref(): void;
  /** Stops the watcher thread and closes the device. Idempotent; later calls throw NATIVE_CLOSED. */
  close(): void;
  readonly closed: boolean;
}

/** Object names the scripted backend's connectors carry (a scenario's uevent.property). */
export const KMS_SCRIPTED_PROPERTY_NAMES = Object.freeze([
  'EDID',
  'DPMS',
  'link-status',
  'non-desktop',
  'CRTC_ID',
  'content type',
  'Content Protection',
  'HDCP Content Type',
] as const);
export type KmsScriptedPropertyName = (typeof KMS_SCRIPTED_PROPERTY_NAMES)[number];

export interface KmsScenarioMode {
  readonly width: number;
  readonly height: number;
  readonly refresh: number;
}

/** What the fake driver does when "Content Protection" becomes Desired on an enabled link. */
export interface KmsScenarioHdcp {
  /** Delay before the outcome. */
  readonly authMs: number;
  /** enabled: → Enabled; fail: stays Desired; revoked/tampered: stays Desired, sink marked. */
  readonly result: 'enabled' | 'fail' | 'revoked' | 'tampered';
}

/** A connector of a scripted scenario (normalized by src/output/scenario.ts). */
export interface KmsScenarioConnector {
  readonly id: number;
  readonly type: KmsConnectorType;
  readonly index: number;
  readonly connection: 'connected' | 'disconnected' | 'unknown';
  /** 0: no CRTC. Active needs a CRTC and a mode. */
  readonly crtc: number;
  readonly mode: KmsScenarioMode | null;
  /** Absent: the connector has no "Content Protection" property. */
  readonly contentProtection?: 'undesired' | 'desired' | 'enabled';
  /** Absent: the connector has no "HDCP Content Type" property. */
  readonly hdcpContentType?: 'type0' | 'type1';
  readonly hdcp?: KmsScenarioHdcp;
  readonly sink: 'unknown' | 'ok' | 'revoked' | 'tampered';
  readonly cgmsA: boolean;
}

/** The fields a timeline step may change (mode/hdcp null: remove). */
export interface KmsScenarioPatch {
  readonly connection?: KmsScenarioConnector['connection'];
  readonly crtc?: number;
  readonly mode?: KmsScenarioMode | null;
  readonly contentProtection?: NonNullable<KmsScenarioConnector['contentProtection']>;
  readonly hdcpContentType?: NonNullable<KmsScenarioConnector['hdcpContentType']>;
  readonly sink?: KmsScenarioConnector['sink'];
  readonly cgmsA?: boolean;
  readonly hdcp?: KmsScenarioHdcp | null;
}

/** The uevent a step emits: HOTPLUG=1, CONNECTOR=<the step's connector>, PROPERTY=<id of that name>. */
export interface KmsScenarioUevent {
  readonly hotplug: boolean;
  readonly connector: boolean;
  readonly property?: KmsScriptedPropertyName;
}

interface KmsScenarioStepBase {
  /** Milliseconds after watch() started. */
  readonly atMs: number;
  /** null: the change is silent (seen only by polling). */
  readonly uevent: KmsScenarioUevent | null;
}
export interface KmsScenarioSetStep extends KmsScenarioStepBase {
  readonly connector: number;
  readonly set: KmsScenarioPatch;
}
export interface KmsScenarioAddStep extends KmsScenarioStepBase {
  readonly add: KmsScenarioConnector;
}
export interface KmsScenarioRemoveStep extends KmsScenarioStepBase {
  readonly remove: number;
}
export type KmsScenarioStep = KmsScenarioSetStep | KmsScenarioAddStep | KmsScenarioRemoveStep;

/** Overrides of a property object's id and enum values (to prove matching by name). */
export interface KmsScenarioPropertyOverride {
  readonly id?: number;
  readonly enums?: Readonly<Record<string, number>>;
}

/** A validated scripted-backend scenario: the output of src/output/scenario.ts (format in docs/kms.md). */
export interface KmsScenario {
  readonly name: string;
  /** This process holds DRM master. */
  readonly master: boolean;
  /** The driver is atomic (false: no CRTC_ID/ACTIVE, commits refused). */
  readonly atomic: boolean;
  /** false: watch() throws UEVENT_FAILED, as when netlink is unavailable. */
  readonly netlink: boolean;
  readonly properties?: {
    readonly 'Content Protection'?: KmsScenarioPropertyOverride;
    readonly 'HDCP Content Type'?: KmsScenarioPropertyOverride;
  };
  readonly connectors: readonly KmsScenarioConnector[];
  readonly timeline: readonly KmsScenarioStep[];
}

export type KmsOpenOptions =
  | {
      readonly backend: 'libdrm';
      /** Default: the first /dev/dri/card* with connectors. */
      readonly path?: string;
      /** Throw KMS_UNAVAILABLE instead of answering available:false when built without libdrm. */
      readonly strict?: boolean;
      /** Give DRM master back if opening the card made this process master (so a player can take it). */
      readonly dropMaster?: boolean;
    }
  | { readonly backend: 'scripted'; readonly scenario: KmsScenario };

export interface KmsBuildInfo {
  readonly libdrm: boolean;
  /** pkg-config --modversion libdrm at build time. */
  readonly libdrmVersion?: string;
}

/** The options object the native KmsDevice constructor reads. */
export type NativeKmsDeviceOptions = KmsOpenOptions;

/**
 * An instance of the addon's `KmsDevice` class (native/kms.h): the {@link KmsDevice} methods,
 * but failing with the addon's raw errors, and taking any content type (the addon checks it).
 */
export interface NativeKmsDeviceHandle extends KmsDevice {
  requestProtection(connectorId: number, contentType: number): KmsProtectionResult;
}

interface KmsAddon {
  readonly KmsDevice: new (options: NativeKmsDeviceOptions) => NativeKmsDeviceHandle;
  kmsBuildInfo(): KmsBuildInfo;
  parseUevent(raw: Uint8Array): NativeUevent | null;
}

function kmsAddon(): KmsAddon {
  const { addon, root } = loadedAddon();
  const { KmsDevice, kmsBuildInfo, parseUevent } = addon;
  if (typeof KmsDevice !== 'function' || !kmsBuildInfo || !parseUevent) {
    throw kwError(
      'NATIVE_LOAD_FAILED',
      describeLoadFailure(root, new Error('the addon predates KMS support')),
      { root },
    );
  }
  return { KmsDevice, kmsBuildInfo, parseUevent };
}

function callNative<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw fromNativeError(err);
  }
}

/** A native KmsDevice whose every failure is a KeywardenError. */
class KmsDeviceBinding implements KmsDevice {
  constructor(private readonly device: NativeKmsDeviceHandle) {}

  get closed(): boolean {
    return this.device.closed;
  }

  snapshot(): NativeKmsSnapshot {
    return callNative(() => this.device.snapshot());
  }

  requestProtection(connectorId: number, contentType: 0 | 1): KmsProtectionResult {
    return callNative(() => this.device.requestProtection(connectorId, contentType));
  }

  releaseProtection(connectorId: number): KmsProtectionResult {
    return callNative(() => this.device.releaseProtection(connectorId));
  }

  watch(onEvent: (event: NativeUevent) => void): void {
    if (typeof onEvent !== 'function') {
      throw kwError('NATIVE_BAD_ARGUMENT', 'watch needs a callback');
    }
    // Node-API only warns about an exception thrown in a thread-safe function's callback;
    // rethrown on the next tick it is an uncaught exception, as from an event emitter.
    const deliver = (event: NativeUevent): void => {
      try {
        onEvent(event);
      } catch (err) {
        process.nextTick(() => {
          throw err;
        });
      }
    };
    callNative(() => this.device.watch(deliver));
  }

  unref(): void {
    this.device.unref();
  }

  ref(): void {
    this.device.ref();
  }

  close(): void {
    this.device.close();
  }
}

/**
 * Opens the output-status device: libdrm on /dev/dri/cardN, or the scripted fake for tests.
 * Throws KMS_DEVICE_FAILED (a card exists but cannot be opened), KMS_UNAVAILABLE (strict,
 * built without libdrm), KMS_SCENARIO_INVALID (a bad scenario; validate it with
 * src/output/scenario.ts first), NATIVE_BAD_ARGUMENT.
 */
export function openKmsDevice(options: KmsOpenOptions): KmsDevice {
  const { KmsDevice: Device } = kmsAddon();
  return new KmsDeviceBinding(callNative(() => new Device(options)));
}

/** Whether the addon was built with libdrm (else the libdrm backend answers available:false). */
export function kmsBuildInfo(): KmsBuildInfo {
  return kmsAddon().kmsBuildInfo();
}

/** Parses one uevent datagram (kernel netlink format); null when not drm or malformed. */
export function parseUevent(raw: Uint8Array): NativeUevent | null {
  const { parseUevent: parse } = kmsAddon();
  return callNative(() => parse(raw));
}
