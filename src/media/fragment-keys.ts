import { kwError } from '../errors/index.js';
import { parseBoxes, printable, readBoxHeader, type Box } from './box.js';
import {
  isProtectionSystemBox,
  parseProtectionSystemHeader,
  type FoundProtectionSystemHeader,
} from './boxes/index.js';
import { toHex, toUuid } from './bytes.js';
import { SYSTEM_IDS } from './cenc-types.js';
import { piffOverrideOf } from './decrypt/aux-data.js';
import { seigIndexPerSample } from './decrypt/seig.js';
import {
  sampleCrypto,
  trackCryptoDefaults,
  type SeigContext,
  type TrackCryptoDefaults,
} from './decrypt/track-crypto.js';
import {
  MEDIA_CONTAINERS,
  TOP_LEVEL_TYPES,
  findTrack,
  isProtectedTrack,
  parseFile,
  seigGroups,
} from './movie.js';
import type { Movie } from './movie.js';
import { decodePsshData, type PsshData } from './pssh-data.js';
import { parseMovieFragment, type TrackFragment } from './samples.js';

/** One pssh box found in a fragment's 'moof'. */
export interface FragmentPssh {
  /** System ID as a lower-case UUID. */
  readonly systemId: string;
  /** Box version (0 or 1). */
  readonly version: number;
  /** KIDs listed in the box itself (version 1), lower-case hex. */
  readonly kids: readonly string[];
  /** keywarden's PsshData, decoded, when the system is keywarden's (embedded license included). */
  readonly keywarden?: PsshData;
  /** 'moof' sequence number of the fragment that carried it. */
  readonly sequenceNumber: number;
}

/** The KIDs one track's samples in the fragment need. */
export interface FragmentTrackKeys {
  readonly trackId: number;
  /** KIDs in first-use order, lower-case hex (tenc default, or the sample's seig group). */
  readonly kids: readonly string[];
  /** Samples that are encrypted (the rest are clear: a clear entry, or isProtected 0). */
  readonly encryptedSamples: number;
  readonly samples: number;
}

/** What a fragment needs and announces about keys. */
export interface FragmentKeys {
  /** mfhd sequence numbers of the moofs found, in order. */
  readonly sequenceNumbers: readonly number[];
  /** Every KID the fragment's encrypted samples need, deduplicated, first use first (hex). */
  readonly kids: readonly string[];
  /** Per track fragment (traf), in order. */
  readonly tracks: readonly FragmentTrackKeys[];
  /** The pssh boxes of the moof(s), in order (PIFF's uuid variant included). */
  readonly pssh: readonly FragmentPssh[];
  /**
   * KIDs the moof's keywarden and W3C common pssh boxes announce (in a live stream: the
   * current key period's and the next one's), deduplicated, hex. A player acquires the ones
   * it lacks before the fragment that first needs them.
   */
  readonly announcedKids: readonly string[];
  /** Non-empty embedded licenses of keywarden pssh boxes (signed EMBEDDED_LICENSE envelopes). */
  readonly embeddedLicenses: readonly Uint8Array[];
  /**
   * False when the bytes end inside the last box after a moof (an mdat still arriving): the
   * moofs, all this needs, were whole.
   */
  readonly complete: boolean;
}

const KEYWARDEN = SYSTEM_IDS.keywarden;
const COMMON = SYSTEM_IDS.common;

/**
 * The moofs of a media segment: its top-level boxes are checked against the buffer, the
 * moofs parsed whole; the last 'mdat' may be cut short (a fragment still arriving).
 */
function segmentMoofs(bytes: Uint8Array): { moofs: Box[]; complete: boolean; extent: number } {
  const moofs: Box[] = [];
  let at = 0;
  while (at < bytes.length) {
    // After a moof, a header still arriving is the next box's (the mdat's) beginning.
    if (bytes.length - at < 8 && moofs.length > 0) return { moofs, complete: false, extent: at };
    // Headers may claim more than the buffer holds; only an mdat is allowed to.
    const claimed = readBoxHeader(bytes, at, bytes.length, 0, Number.MAX_SAFE_INTEGER - at);
    const toEnd = new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0) === 0;
    const h = toEnd ? { ...claimed, size: bytes.length - at } : claimed;
    // styp, sidx, emsg, prft... are skipped; so are ftyp and moov (the `init` given rules).
    if (!TOP_LEVEL_TYPES.has(h.type))
      throw kwError(
        'MEDIA_MALFORMED_BOX',
        `a media segment holds a '${printable(h.type)}' box at ${at}`,
        { box: h.type, offset: at },
      );
    if (at + h.size > bytes.length) {
      if (h.type === 'mdat') return { moofs, complete: false, extent: at + h.size };
      throw kwError(
        'MEDIA_TRUNCATED',
        `the '${h.type}' box at ${at} needs ${h.size} bytes, ${bytes.length - at} left`,
        { box: h.type, offset: at },
      );
    }
    if (h.type === 'moof') {
      const children = parseBoxes(bytes, at + h.headerSize, at + h.size, {
        containers: MEDIA_CONTAINERS,
        depth: 1,
      });
      moofs.push({ ...h, payload: bytes.subarray(at + h.headerSize, at + h.size), children });
    }
    at += h.size;
  }
  return { moofs, complete: true, extent: bytes.length };
}

/** The init segment's movie (parsed from bytes, or as given). */
function movieOf(init: Uint8Array | Movie): Movie {
  if (!(init instanceof Uint8Array)) return init;
  const movie = parseFile(init).movie;
  if (!movie)
    throw kwError('MEDIA_MISSING_BOX', "the init segment has no 'moov' box", { box: 'moov' });
  return movie;
}

/** The KIDs one traf's samples need, after tenc, seig and PIFF overrides. */
function trafKeys(tf: TrackFragment, d: TrackCryptoDefaults): FragmentTrackKeys {
  const groupIndex = seigIndexPerSample(tf.box, tf.samples.length);
  const piff = piffOverrideOf(tf.box);
  const ctx: SeigContext = {
    global: d.track.seigGroups,
    local: seigGroups(tf.box),
    ...(groupIndex && { groupIndex }),
    ...(piff && { piff }),
  };
  const kids: string[] = [];
  const memo = new Map<number, string | undefined>();
  let encrypted = 0;
  tf.samples.forEach((s, i) => {
    const key = s.descriptionIndex * 0x100000000 + (groupIndex?.[i] ?? 0);
    let kid = memo.get(key);
    if (!memo.has(key)) {
      const c = sampleCrypto(d, s.descriptionIndex, ctx, i);
      kid = c ? toHex(c.kid) : undefined;
      memo.set(key, kid);
    }
    if (kid === undefined) return;
    encrypted++;
    if (!kids.includes(kid)) kids.push(kid);
  });
  return { trackId: tf.trackId, kids, encryptedSamples: encrypted, samples: tf.samples.length };
}

function describePssh(p: FoundProtectionSystemHeader, sequenceNumber: number): FragmentPssh {
  const systemId = toUuid(p.systemId);
  const base = { systemId, version: p.version, kids: p.kids.map(toHex), sequenceNumber };
  return systemId === KEYWARDEN ? { ...base, keywarden: decodePsshData(p.data) } : base;
}

/**
 * Reads what a media fragment needs and announces about keys, for a player session that
 * must have each key before the first sample using it:
 * - `kids`: the KIDs its encrypted samples need (tenc defaults of the init segment, or the
 *   sample's 'seig' group in the traf or the track's stbl, or a PIFF override);
 * - `pssh`: the pssh boxes in its moof, keywarden's decoded (with any embedded license);
 * - `announcedKids`: the KIDs those keywarden / W3C common pssh boxes list.
 *
 * `fragment` is a media segment: one or more moof+mdat, possibly after styp, sidx, emsg or
 * prft; its last mdat may be incomplete. `init` is the init segment (bytes or its parsed
 * Movie). Everything is bounds-checked; bad input is a coded error (MEDIA_TRUNCATED,
 * MEDIA_BAD_BOX_SIZE, MEDIA_MALFORMED_BOX, MEDIA_MISSING_BOX, MEDIA_MISSING_TENC,
 * MEDIA_UNKNOWN_SCHEME, MEDIA_TOO_LARGE, HEADER_MALFORMED for a bad keywarden PsshData...).
 */
export function readFragmentKeys(fragment: Uint8Array, init: Uint8Array | Movie): FragmentKeys {
  if (!(fragment instanceof Uint8Array))
    throw kwError('MEDIA_NOT_MP4', 'the fragment is not a byte array');
  const movie = movieOf(init);
  const { moofs, complete, extent } = segmentMoofs(fragment);
  if (moofs.length === 0)
    throw kwError('MEDIA_MISSING_BOX', "the media segment has no 'moof' box", { box: 'moof' });
  const defaults = new Map<number, TrackCryptoDefaults>();
  const tracks: FragmentTrackKeys[] = [];
  const pssh: FragmentPssh[] = [];
  const sequenceNumbers: number[] = [];
  for (const moof of moofs) {
    // Samples lie in the segment's mdat boxes: their declared extent bounds the counts.
    const parsed = parseMovieFragment(moof, movie, { dataLimit: extent });
    sequenceNumbers.push(parsed.sequenceNumber);
    for (const box of (moof.children ?? []).filter(isProtectionSystemBox))
      pssh.push(describePssh(parseProtectionSystemHeader(box), parsed.sequenceNumber));
    for (const tf of parsed.trafs) {
      const track = findTrack(movie, tf.trackId);
      if (!track || !isProtectedTrack(track)) {
        tracks.push({
          trackId: tf.trackId,
          kids: [],
          encryptedSamples: 0,
          samples: tf.samples.length,
        });
        continue;
      }
      let d = defaults.get(track.id);
      if (!d) defaults.set(track.id, (d = trackCryptoDefaults(track)));
      tracks.push(trafKeys(tf, d));
    }
  }
  const announced = pssh.flatMap((p) =>
    p.systemId === KEYWARDEN
      ? [...p.kids, ...(p.keywarden?.keyIds ?? []).map(toHex)]
      : p.systemId === COMMON
        ? p.kids
        : [],
  );
  return {
    sequenceNumbers,
    kids: [...new Set(tracks.flatMap((t) => t.kids))],
    tracks,
    pssh,
    announcedKids: [...new Set(announced)],
    embeddedLicenses: pssh.flatMap((p) =>
      p.keywarden && p.keywarden.embeddedLicense.length > 0 ? [p.keywarden.embeddedLicense] : [],
    ),
    complete,
  };
}
