import path from 'node:path';
import { kwError } from '../../errors/index.js';
import { toHex } from '../bytes.js';
import type { CencScheme, SampleCipherFactory } from '../sample-crypto.js';
import type { RandomSource } from './iv-sequence.js';
import type { ContentKey } from './key-schedule.js';
import { ivSizeFor } from './scheme-policy.js';

/** The four schemes the packager writes. */
export const PACKAGE_SCHEMES: readonly CencScheme[] = ['cenc', 'cbcs', 'cens', 'cbc1'];

/** Default fragment duration: 2 s, the usual DASH/HLS segment length. */
export const DEFAULT_FRAGMENT_MS = 2000;

/** What `packageFile` needs. Only input, output, scheme and key are required. */
export interface PackageOptions {
  readonly input: string;
  readonly output: string;
  readonly scheme: CencScheme;
  /** The default key: every encrypted track, unless audio has its own. */
  readonly key: ContentKey;
  /** A separate key for audio tracks (never rotated). */
  readonly audioKey?: ContentKey;
  /** Keys that take turns with `key` every `rotateEvery` fragments (signalled with 'seig'). */
  readonly rotationKeys?: readonly ContentKey[];
  /** Fragments per key period; default 1. */
  readonly rotateEvery?: number;
  /** First IV: 8 or 16 bytes (cenc/cens), 16 bytes (cbc1, and the constant IV of cbcs). Random by default. */
  readonly iv?: Uint8Array;
  /** Target fragment duration in milliseconds; default 2000. */
  readonly fragmentMs?: number;
  /** Content id for keywarden's pssh; default: the input's file name without extension. */
  readonly contentId?: string;
  /** License server URL for keywarden's pssh. */
  readonly licenseUrl?: string;
  /** Policy name suggested to the license server. */
  readonly policyHint?: string;
  /**
   * Live streams: every moof carries a keywarden pssh (version 1) and a W3C common pssh
   * listing the KIDs of the fragment's key period and of the next one, so that a player
   * learns the next KID while the current key still plays (docs/key-rotation.md).
   */
  readonly psshInMoof?: boolean;
  /**
   * With `psshInMoof`: entry p is an embedded leaf license (a signed EMBEDDED_LICENSE
   * envelope) placed in the keywarden pssh data of every fragment of key period p (period
   * p = fragments p·rotateEvery .. (p+1)·rotateEvery − 1; one period without rotation keys).
   * There must be one entry per key period; an empty entry means none for that period.
   */
  readonly embeddedLicenses?: readonly Uint8Array[];
  /** Who does the AES (injectable for tests); default: the native addon, node:crypto when it cannot load. */
  readonly cipherFactory?: SampleCipherFactory;
  /** Source of random IVs (injectable for deterministic tests). */
  readonly random?: RandomSource;
  /** Called with bytes of input processed and the input size. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Options after validation, defaults filled. */
export interface ResolvedPackageOptions extends PackageOptions {
  readonly rotationKeys: readonly ContentKey[];
  readonly rotateEvery: number;
  readonly fragmentMs: number;
  readonly contentId: string;
  readonly psshInMoof: boolean;
  readonly embeddedLicenses: readonly Uint8Array[];
}

/** Largest embedded license accepted in a pssh (real ones are 2-4 KiB): 256 KiB. */
export const MAX_EMBEDDED_LICENSE_BYTES = 256 * 1024;

function checkEmbeddedLicenses(opts: PackageOptions): readonly Uint8Array[] {
  const licenses = opts.embeddedLicenses ?? [];
  if (licenses.length > 0 && !opts.psshInMoof)
    throw kwError('CLI_USAGE', 'embedded licenses travel in moof pssh boxes: add --pssh-in-moof');
  const big = licenses.findIndex((l) => l.length > MAX_EMBEDDED_LICENSE_BYTES);
  if (big >= 0)
    throw kwError(
      'CLI_USAGE',
      `embedded license ${big + 1} is ${licenses[big]!.length} bytes; the limit is ${MAX_EMBEDDED_LICENSE_BYTES}`,
    );
  return licenses;
}

/**
 * The key period of fragment `index` (0-based): fragments take turns in periods of
 * `rotateEvery` when there are rotation keys; without them the whole stream is period 0.
 */
export function keyPeriodOf(
  opts: Pick<ResolvedPackageOptions, 'rotationKeys' | 'rotateEvery'>,
  index: number,
): number {
  return opts.rotationKeys.length === 0 ? 0 : Math.floor(index / opts.rotateEvery);
}

function checkKey(k: ContentKey, what: string): void {
  if (k.kid.length !== 16 || k.key.length !== 16) {
    throw kwError('CLI_BAD_KEY', `${what}: a KID and a key are 16 bytes each`, { what });
  }
}

function checkPositiveInteger(value: number, what: string, min: number): void {
  if (!Number.isInteger(value) || value < min)
    throw kwError('CLI_USAGE', `${what} must be an integer ≥ ${min}, not ${value}`);
}

/** A KID used with two different keys would make the content undecryptable. */
function checkKidsConsistent(keys: readonly ContentKey[]): void {
  const seen = new Map<string, string>();
  for (const k of keys) {
    const kid = toHex(k.kid);
    const key = toHex(k.key);
    if (seen.has(kid) && seen.get(kid) !== key)
      throw kwError('CLI_BAD_KEY', `KID ${kid} is given with two different keys`, { kid });
    seen.set(kid, key);
  }
}

/** Validates `opts` (coded errors, nothing touched yet) and fills the defaults. */
export function resolvePackageOptions(opts: PackageOptions): ResolvedPackageOptions {
  if (!PACKAGE_SCHEMES.includes(opts.scheme)) {
    throw kwError(
      'MEDIA_UNKNOWN_SCHEME',
      `cannot package with scheme '${String(opts.scheme)}'; use cenc, cbcs, cens or cbc1`,
    );
  }
  if (path.resolve(opts.input) === path.resolve(opts.output))
    throw kwError('CLI_USAGE', 'the output must not overwrite the input');
  const rotationKeys = opts.rotationKeys ?? [];
  const all = [opts.key, ...(opts.audioKey ? [opts.audioKey] : []), ...rotationKeys];
  all.forEach((k, i) => checkKey(k, i === 0 ? '--key' : 'a key'));
  checkKidsConsistent(all);
  ivSizeFor(opts.scheme, opts.iv?.length);
  const rotateEvery = opts.rotateEvery ?? 1;
  checkPositiveInteger(rotateEvery, '--rotate-every', 1);
  const fragmentMs = opts.fragmentMs ?? DEFAULT_FRAGMENT_MS;
  checkPositiveInteger(fragmentMs, '--fragment-ms', 1);
  const contentId = opts.contentId ?? path.basename(opts.input, path.extname(opts.input));
  const embeddedLicenses = checkEmbeddedLicenses(opts);
  return {
    ...opts,
    rotationKeys,
    rotateEvery,
    fragmentMs,
    contentId,
    psshInMoof: opts.psshInMoof ?? false,
    embeddedLicenses,
  };
}
