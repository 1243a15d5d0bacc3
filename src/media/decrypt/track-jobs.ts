import type { Box } from '../box.js';
import type { SampleEncryptionTable } from '../boxes/index.js';
import { originalFormat, type Track } from '../movie.js';
import type { Sample } from '../samples.js';
import { piffOverrideOf, sampleEncryptionTable, type AuxReader } from './aux-data.js';
import { checkForEntry, type SampleCheck } from './key-check.js';
import { sampleJobs, type CipherGroups, type SampleJob } from './sample-jobs.js';
import { seigIndexPerSample } from './seig.js';
import {
  sampleCrypto,
  type SampleCrypto,
  type SeigContext,
  type TrackCryptoDefaults,
} from './track-crypto.js';
import { seigGroups } from '../movie.js';

/** Everything the job builder needs about one protected track, resolved once per decrypt. */
export interface ProtectedTrack {
  readonly track: Track;
  readonly defaults: TrackCryptoDefaults;
  /** Wrong-key check per sample description index (1-based). */
  readonly checks: readonly (SampleCheck | undefined)[];
}

/** Resolves a protected track's defaults and checks. */
export function protectedTrack(track: Track, defaults: TrackCryptoDefaults): ProtectedTrack {
  const checks = [
    undefined,
    ...track.descriptions.entries.map((e, i) => checkForEntry(e, originalFormat(track, i + 1))),
  ];
  return { track, defaults, checks };
}

/** The samples of one traf or flat track, and where its encryption boxes are. */
export interface SampleSet {
  readonly source: number;
  /** traf or stbl. */
  readonly container: Box;
  readonly samples: readonly Sample[];
  /** Base for saio offsets: moof start or base_data_offset in a traf, 0 in stbl. */
  readonly saioBase: number;
  /** Samples per trun (traf) or chunk (stbl). */
  readonly runLengths: readonly number[];
  /** Whether fragment-local seig groups apply (traf only). */
  readonly fragment: boolean;
}

/** Per-sample crypto with results shared between samples of the same entry and group. */
function resolveCrypto(
  p: ProtectedTrack,
  set: SampleSet,
  ctx: SeigContext,
): (SampleCrypto | undefined)[] {
  const memo = new Map<number, SampleCrypto | undefined>();
  return set.samples.map((s, i) => {
    const key = s.descriptionIndex * 0x100000000 + (ctx.groupIndex?.[i] ?? 0);
    if (memo.has(key)) return memo.get(key);
    const c = sampleCrypto(p.defaults, s.descriptionIndex, ctx, i);
    memo.set(key, c);
    return c;
  });
}

/** Builds the decrypt jobs of one traf or flat track: crypto per sample, aux info, validation. */
export async function trackJobs(
  p: ProtectedTrack,
  set: SampleSet,
  read: AuxReader,
  groups: CipherGroups,
): Promise<SampleJob[]> {
  const piff = set.fragment ? piffOverrideOf(set.container) : undefined;
  const groupIndex = seigIndexPerSample(set.container, set.samples.length);
  const ctx: SeigContext = {
    global: p.track.seigGroups,
    local: set.fragment ? seigGroups(set.container) : [],
    ...(groupIndex && { groupIndex }),
    ...(piff && { piff }),
  };
  const crypto = resolveCrypto(p, set, ctx);
  const ivSizes = Uint8Array.from(crypto, (c) => c?.ivSize ?? 0);
  const table: SampleEncryptionTable | undefined = await sampleEncryptionTable({
    container: set.container,
    sampleCount: set.samples.length,
    ivSizes,
    saioBase: set.saioBase,
    runLengths: set.runLengths,
    read,
  });
  return sampleJobs(
    {
      source: set.source,
      trackId: p.track.id,
      samples: set.samples,
      crypto,
      ...(table && { table }),
      checks: p.checks,
    },
    groups,
  );
}
