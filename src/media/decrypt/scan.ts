import { kwError } from '../../errors/index.js';
import { boxSize, type Box } from '../box.js';
import { parseMovie, seigGroups, type Movie } from '../movie.js';
import type { ByteSource } from '../stream/byte-source.js';
import { readWholeBox, scanTopLevel } from '../stream/top-level-boxes.js';
import { piffOverrideOf } from './aux-data.js';
import { clearFragmentBox, clearMovieBox } from './clear-boxes.js';
import { OutputLayout, type LayoutAction, type LayoutEntry } from './layout.js';

/** What the first pass learns: the movie, the output layout, and the KIDs fragments name. */
export interface DecryptScan {
  readonly movie: Movie;
  /** Index of the source holding moov. */
  readonly movieSource: number;
  readonly layout: OutputLayout;
  /** KIDs of fragment-local seig groups and PIFF overrides (key rotation). */
  readonly fragmentKids: readonly Uint8Array[];
  readonly fragmentCount: number;
}

function actionFor(type: string): LayoutAction {
  switch (type) {
    case 'moov':
      return 'movie';
    case 'moof':
      return 'fragment';
    case 'sidx':
      return 'index';
    case 'mdat':
      return 'media';
    // mfra's tfra entries point at input moof offsets; a clear file plays without it.
    case 'mfra':
      return 'drop';
    default:
      return 'copy';
  }
}

/** KIDs a fragment names on its own (seig in traf, PIFF override). */
function fragmentKidsOf(moof: Box): Uint8Array[] {
  const kids: Uint8Array[] = [];
  for (const traf of (moof.children ?? []).filter((c) => c.type === 'traf')) {
    kids.push(
      ...seigGroups(traf)
        .filter((g) => g.isProtected !== 0)
        .map((g) => g.kid),
    );
    const piff = piffOverrideOf(traf);
    if (piff && piff.algorithm !== 0) kids.push(piff.kid);
  }
  return kids;
}

/**
 * First pass over the sources: top-level headers, the moov (kept), every moof (read, sized
 * as rewritten, then dropped) so that all output offsets are known before writing.
 */
export async function scanForDecrypt(sources: readonly ByteSource[]): Promise<DecryptScan> {
  const entries: LayoutEntry[] = [];
  let movie: Movie | undefined;
  let movieSource = 0;
  const fragmentKids: Uint8Array[] = [];
  let fragmentCount = 0;
  for (const [source, src] of sources.entries()) {
    for (const header of await scanTopLevel(src)) {
      const action = actionFor(header.type);
      let outSize = action === 'drop' ? 0 : header.size;
      if (action === 'movie') {
        if (movie)
          throw kwError('MEDIA_MALFORMED_BOX', 'the input has more than one moov', {
            box: 'moov',
            offset: header.offset,
          });
        movie = parseMovie(await readWholeBox(src, header));
        movieSource = source;
        outSize = boxSize(clearMovieBox(movie));
      } else if (action === 'fragment') {
        const moof = await readWholeBox(src, header);
        fragmentKids.push(...fragmentKidsOf(moof));
        outSize = boxSize(clearFragmentBox(moof));
        fragmentCount++;
      }
      entries.push({ source, header, action, outSize, outOffset: 0, index: entries.length });
    }
  }
  if (!movie) {
    throw kwError('MEDIA_MISSING_BOX', 'the input has no moov; pass the init segment with --init', {
      box: 'moov',
    });
  }
  return { movie, movieSource, layout: new OutputLayout(entries), fragmentKids, fragmentCount };
}
