import { readFragmentKeys } from '../media/fragment-keys.js';

/** What a session learns from one fragment before decrypting it. */
export interface FragmentNeeds {
  /** KIDs its encrypted samples use (hex). */
  readonly needed: readonly string[];
  /** KIDs its moof's pssh boxes announce: in a live stream, the next key period's too. */
  readonly announced: readonly string[];
  /** Embedded leaf licenses its pssh boxes carry (signed envelopes). */
  readonly embeddedLicenses: readonly Uint8Array[];
  /** The license URL and content id its keywarden pssh names ('' when none). */
  readonly licenseUrl: string;
  readonly contentId: string;
}

const NOTHING: FragmentNeeds = {
  needed: [],
  announced: [],
  embeddedLicenses: [],
  licenseUrl: '',
  contentId: '',
};

/** True when `data` starts with ftyp or moov: a file with its own header, not a segment. */
export function hasMovieHeader(data: Uint8Array): boolean {
  if (data.length < 8) return false;
  const type = Buffer.from(data.subarray(4, 8)).toString('latin1');
  return type === 'ftyp' || type === 'moov';
}

/**
 * The keys a media segment needs and announces (src/media/fragment-keys.ts reads its moofs
 * against the init segment). A whole file carries its own header, whose pssh and tenc the
 * session already knows: nothing more to learn from it here.
 */
export function fragmentNeeds(fragment: Uint8Array, init: Uint8Array | undefined): FragmentNeeds {
  if (hasMovieHeader(fragment) || !init) return NOTHING;
  const keys = readFragmentKeys(fragment, init);
  const ours = keys.pssh.find((p) => p.keywarden?.licenseUrl || p.keywarden?.contentId)?.keywarden;
  return {
    needed: keys.kids,
    announced: keys.announcedKids,
    embeddedLicenses: keys.embeddedLicenses,
    licenseUrl: ours?.licenseUrl ?? '',
    contentId: ours?.contentId ?? '',
  };
}
