import { kwError } from '../../errors/index.js';
import {
  FRAGMENT_LOCAL_GROUP_BASE,
  type PiffOverride,
  type ProtectionSchemeInfo,
} from '../boxes/index.js';
import type { SampleGroupEncryption, TrackEncryption } from '../cenc-types.js';
import type { Track } from '../movie.js';
import type { CencScheme } from '../sample-crypto.js';

/** How one sample is encrypted, after tenc, seig and PIFF overrides are applied. */
export interface SampleCrypto {
  readonly scheme: CencScheme;
  readonly kid: Uint8Array;
  /** 0 (constant IV), 8 or 16. */
  readonly ivSize: number;
  readonly constantIv?: Uint8Array;
  readonly cryptByteBlock: number;
  readonly skipByteBlock: number;
}

const KNOWN: ReadonlySet<string> = new Set(['cenc', 'cbcs', 'cens', 'cbc1', 'piff']);

/** The AES mode of a protected sample entry (ISO/IEC 23001-7 §4.2, PIFF 1.1 §5.3.2). */
export function entryScheme(p: ProtectionSchemeInfo): CencScheme {
  // No schm: PIFF 1.1 files written before 'piff' was registered, or a lenient cenc writer.
  const type = p.schemeType ?? (p.piffAlgorithm !== undefined ? 'piff' : 'cenc');
  if (!KNOWN.has(type)) {
    throw kwError(
      'MEDIA_UNKNOWN_SCHEME',
      `protection scheme '${type.replace(/[^\x20-\x7e]/g, '?')}' is not supported`,
      { scheme: type },
    );
  }
  if (type === 'piff') return piffScheme(p.piffAlgorithm ?? 1);
  return type as CencScheme;
}

/** PIFF AlgorithmID: 1 AES-CTR (as cenc), 2 AES-CBC (as cbc1). */
export function piffScheme(algorithm: number): CencScheme {
  if (algorithm === 1) return 'cenc';
  if (algorithm === 2) return 'cbc1';
  throw kwError('MEDIA_UNKNOWN_SCHEME', `PIFF AlgorithmID ${algorithm} is not supported`, {
    algorithm,
  });
}

/** Only the pattern schemes use crypt/skip (§9.6); cenc and cbc1 encrypt every block. */
function usesPattern(scheme: CencScheme): boolean {
  return scheme === 'cbcs' || scheme === 'cens';
}

/** Track defaults as SampleCrypto, or undefined when the defaults say "not protected". */
export function fromEncryption(scheme: CencScheme, e: TrackEncryption): SampleCrypto | undefined {
  if (e.isProtected === 0) return undefined;
  const pattern = usesPattern(scheme);
  if (pattern && e.cryptByteBlock === 0 && e.skipByteBlock !== 0) {
    throw kwError('MEDIA_UNSUPPORTED', `pattern 0:${e.skipByteBlock} encrypts no block`, {
      scheme,
    });
  }
  return {
    scheme,
    kid: e.kid,
    ivSize: e.perSampleIvSize,
    ...(e.constantIv && { constantIv: e.constantIv }),
    cryptByteBlock: pattern ? e.cryptByteBlock : 0,
    skipByteBlock: pattern ? e.skipByteBlock : 0,
  };
}

/** The resolved defaults of each sample entry of a track. */
export interface TrackCryptoDefaults {
  readonly track: Track;
  /** Per sample entry: the scheme and tenc defaults, or undefined for a clear entry. */
  readonly entries: readonly ({ scheme: CencScheme; defaults: TrackEncryption } | undefined)[];
}

/** Resolves the scheme and tenc of every protected sample entry; throws on unknown schemes or missing tenc. */
export function trackCryptoDefaults(track: Track): TrackCryptoDefaults {
  const entries = track.protection.map((p) => {
    if (!p) return undefined;
    const scheme = entryScheme(p);
    if (!p.trackEncryption) {
      throw kwError(
        'MEDIA_MISSING_TENC',
        `track ${track.id} is protected ('${p.schemeType ?? 'piff'}') but has no 'tenc'`,
        { trackId: track.id },
      );
    }
    return { scheme, defaults: p.trackEncryption };
  });
  return { track, entries };
}

/** Where a fragment's or flat track's sample group descriptions come from. */
export interface SeigContext {
  /** 'seig' descriptions of the track (stbl in moov). */
  readonly global: readonly SampleGroupEncryption[];
  /** 'seig' descriptions of the fragment (sgpd in traf). */
  readonly local: readonly SampleGroupEncryption[];
  /** Per sample: group_description_index (0 = none), or undefined without sbgp. */
  readonly groupIndex?: Uint32Array;
  /** PIFF sample encryption override for the whole fragment. */
  readonly piff?: PiffOverride;
}

/** The seig entry of a group_description_index (ISO/IEC 14496-12 §8.9.4). */
function groupEntry(ctx: SeigContext, index: number): SampleGroupEncryption {
  const local = index > FRAGMENT_LOCAL_GROUP_BASE;
  const list = local ? ctx.local : ctx.global;
  const entry = list[(local ? index - FRAGMENT_LOCAL_GROUP_BASE : index) - 1];
  if (!entry)
    throw kwError('MEDIA_MALFORMED_BOX', `sbgp refers to missing 'seig' description ${index}`, {
      box: 'sbgp',
      index,
    });
  return entry;
}

/**
 * How sample `i` (of description `descriptionIndex`) is encrypted, or undefined when it is
 * clear: a clear sample entry, isProtected 0 in tenc or in its seig group.
 */
export function sampleCrypto(
  d: TrackCryptoDefaults,
  descriptionIndex: number,
  ctx: SeigContext,
  i: number,
): SampleCrypto | undefined {
  const entry = d.entries[descriptionIndex - 1];
  if (d.track.descriptions.entries[descriptionIndex - 1] === undefined) {
    throw kwError(
      'MEDIA_MALFORMED_BOX',
      `track ${d.track.id} has no sample entry ${descriptionIndex}`,
      { trackId: d.track.id },
    );
  }
  if (!entry) return undefined;
  const group = ctx.groupIndex?.[i] ?? 0;
  const base = group === 0 ? entry.defaults : groupEntry(ctx, group);
  if (!ctx.piff) return fromEncryption(entry.scheme, base);
  if (ctx.piff.algorithm === 0) return undefined;
  const scheme = piffScheme(ctx.piff.algorithm);
  return fromEncryption(scheme, {
    ...base,
    isProtected: 1,
    kid: ctx.piff.kid,
    perSampleIvSize: ctx.piff.ivSize,
  });
}

/** Every KID the track's defaults and stbl seig groups name (what a player must license up front). */
export function declaredKids(d: TrackCryptoDefaults): Uint8Array[] {
  const kids = d.entries.flatMap((e) =>
    e && e.defaults.isProtected !== 0 ? [e.defaults.kid] : [],
  );
  if (d.entries.some((e) => e))
    kids.push(...d.track.seigGroups.filter((g) => g.isProtected !== 0).map((g) => g.kid));
  return kids;
}
