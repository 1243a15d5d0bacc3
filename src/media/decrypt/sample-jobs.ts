import { kwError } from '../../errors/index.js';
import type { SampleEncryptionTable } from '../boxes/index.js';
import { toHex, toUuid } from '../bytes.js';
import type { CencScheme, SampleCipher } from '../sample-crypto.js';
import type { Sample } from '../samples.js';
import type { KeyRing } from './key-ring.js';
import type { EncryptedMap, SampleCheck } from './key-check.js';
import type { SampleCrypto } from './track-crypto.js';

/** Samples that can share one SampleBatch: same key, scheme and pattern. */
export interface CipherGroup {
  readonly id: string;
  readonly kid: Uint8Array;
  readonly cipher: SampleCipher;
  readonly scheme: CencScheme;
  readonly cryptByteBlock: number;
  readonly skipByteBlock: number;
}

/** One encrypted sample to decrypt: where it is in the input and how it is encrypted. */
export interface SampleJob extends EncryptedMap {
  /** Index of the input source (init segment, media segment). */
  readonly source: number;
  /** Absolute offset in that source. */
  readonly offset: number;
  readonly size: number;
  readonly trackId: number;
  readonly group: CipherGroup;
  /** 16-byte IV slot: `ivs[ivAt .. ivAt + 16)`. */
  readonly ivs: Uint8Array;
  readonly ivAt: number;
  readonly check?: SampleCheck;
}

/** Cipher groups of a decrypt job, created once and reused across fragments. */
export class CipherGroups {
  private readonly groups = new Map<string, CipherGroup>();

  constructor(private readonly keys: KeyRing) {}

  /** The group for a sample's crypto parameters. */
  of(c: SampleCrypto): CipherGroup {
    const id = `${toHex(c.kid)}/${c.scheme}/${c.cryptByteBlock}/${c.skipByteBlock}`;
    let g = this.groups.get(id);
    if (!g) {
      g = {
        id,
        kid: c.kid,
        cipher: this.keys.cipher(c.kid),
        scheme: c.scheme,
        cryptByteBlock: c.cryptByteBlock,
        skipByteBlock: c.skipByteBlock,
      };
      this.groups.set(id, g);
    }
    return g;
  }
}

/** What {@link sampleJobs} needs about one track fragment (or flat track). */
export interface JobInput {
  readonly source: number;
  readonly trackId: number;
  readonly samples: readonly Sample[];
  /** Per sample, or undefined for clear samples. */
  readonly crypto: readonly (SampleCrypto | undefined)[];
  readonly table?: SampleEncryptionTable;
  /** Wrong-key check per sample description index (1-based; index 0 unused). */
  readonly checks: readonly (SampleCheck | undefined)[];
}

const EMPTY = new Uint32Array(0);

function constantIvSlot(iv: Uint8Array): Uint8Array {
  const slot = new Uint8Array(16);
  slot.set(iv);
  return slot;
}

/** The 16-byte IV slot of sample `i`: its row of the aux table, or the shared constant IV. */
function ivSlot(
  c: SampleCrypto,
  input: JobInput,
  i: number,
  constants: Map<Uint8Array, Uint8Array>,
): { ivs: Uint8Array; ivAt: number } {
  if (c.ivSize > 0) {
    if (!input.table) {
      throw kwError(
        'MEDIA_MISSING_BOX',
        `track ${input.trackId} has per-sample IVs but no 'senc' or saiz/saio`,
        {
          box: 'senc',
          trackId: input.trackId,
        },
      );
    }
    return { ivs: input.table.ivs, ivAt: i * 16 };
  }
  if (!c.constantIv) {
    throw kwError(
      'MEDIA_BAD_IV',
      `track ${input.trackId} sample ${i} has neither a per-sample nor a constant IV`,
      {
        trackId: input.trackId,
      },
    );
  }
  const ivs = constants.get(c.constantIv) ?? constantIvSlot(c.constantIv);
  constants.set(c.constantIv, ivs);
  return { ivs, ivAt: 0 };
}

/** Turns samples with their crypto parameters and aux info into jobs, validating IVs and subsample maps. */
export function sampleJobs(input: JobInput, groups: CipherGroups): SampleJob[] {
  const jobs: SampleJob[] = [];
  const constants = new Map<Uint8Array, Uint8Array>();
  const { table, trackId } = input;
  input.samples.forEach((s, i) => {
    const c = input.crypto[i];
    if (!c || s.size === 0) return;
    const subCount = table?.subsampleCount[i] ?? 0;
    const subStart = table?.subsampleStart[i] ?? 0;
    const subsamples = table?.subsamples ?? EMPTY;
    checkSubsamples(subsamples, subStart, subCount, s.size, trackId, i);
    jobs.push({
      ...ivSlot(c, input, i, constants),
      source: input.source,
      offset: s.offset,
      size: s.size,
      trackId,
      group: groups.of(c),
      scheme: c.scheme,
      cryptByteBlock: c.cryptByteBlock,
      skipByteBlock: c.skipByteBlock,
      subsamples,
      subStart,
      subCount,
      check: input.checks[s.descriptionIndex],
    });
  });
  return jobs;
}

/** The subsample map must fit in the sample (ISO/IEC 23001-7 §7.2.2). */
function checkSubsamples(
  subs: Uint32Array,
  start: number,
  count: number,
  size: number,
  trackId: number,
  index: number,
): void {
  let total = 0;
  for (let k = 0; k < count; k++) total += subs[2 * (start + k)]! + subs[2 * (start + k) + 1]!;
  if (total > size) {
    throw kwError(
      'MEDIA_SUBSAMPLE_OVERFLOW',
      `track ${trackId} sample ${index}: subsamples cover ${total} bytes of a ${size}-byte sample`,
      {
        trackId,
        index,
        total,
        size,
      },
    );
  }
}

/** The KID of a job, for messages. */
export function jobKid(job: SampleJob): string {
  return toUuid(job.group.kid);
}
