import { kwError } from '../../errors/index.js';
import type { SampleBatch } from '../sample-crypto.js';
import type { CipherGroup, SampleJob } from './sample-jobs.js';
import { jobKid } from './sample-jobs.js';

/** One SampleBatch per cipher group for the jobs of a buffer. */
export interface GroupBatch {
  readonly group: CipherGroup;
  readonly batch: SampleBatch;
}

/**
 * Builds the batches for `jobs`, whose samples sit in a buffer that starts at input offset
 * `bufferStart`. Two passes (count, then fill) so each typed array is allocated once.
 */
export function buildBatches(jobs: readonly SampleJob[], bufferStart: number): GroupBatch[] {
  const counts = new Map<CipherGroup, { samples: number; subs: number }>();
  for (const j of jobs) {
    const c = counts.get(j.group) ?? { samples: 0, subs: 0 };
    c.samples++;
    c.subs += j.subCount;
    counts.set(j.group, c);
  }
  const out = new Map<CipherGroup, { batch: SampleBatch; n: number; sub: number }>();
  for (const [group, c] of counts) {
    const batch: SampleBatch = {
      scheme: group.scheme,
      cryptByteBlock: group.cryptByteBlock,
      skipByteBlock: group.skipByteBlock,
      samples: new Uint32Array(c.samples * 4),
      ivs: new Uint8Array(c.samples * 16),
      subsamples: new Uint32Array(c.subs * 2),
    };
    out.set(group, { batch, n: 0, sub: 0 });
  }
  for (const j of jobs) fill(out.get(j.group)!, j, bufferStart);
  return [...out].map(([group, { batch }]) => ({ group, batch }));
}

function fill(
  acc: { batch: SampleBatch; n: number; sub: number },
  j: SampleJob,
  bufferStart: number,
): void {
  const { batch } = acc;
  const k = acc.n++;
  batch.samples[4 * k] = j.offset - bufferStart;
  batch.samples[4 * k + 1] = j.size;
  batch.samples[4 * k + 2] = acc.sub;
  batch.samples[4 * k + 3] = j.subCount;
  batch.ivs.set(j.ivs.subarray(j.ivAt, j.ivAt + 16), 16 * k);
  if (j.subCount > 0) {
    batch.subsamples.set(
      j.subsamples.subarray(2 * j.subStart, 2 * (j.subStart + j.subCount)),
      2 * acc.sub,
    );
    acc.sub += j.subCount;
  }
}

/** Decrypts every job of a buffer in place (one async call per group), then runs the wrong-key checks. */
export async function decryptJobsInPlace(
  buf: Uint8Array,
  bufferStart: number,
  jobs: readonly SampleJob[],
  verify: boolean,
): Promise<void> {
  if (jobs.length === 0) return;
  const batches = buildBatches(jobs, bufferStart);
  await Promise.all(batches.map((b) => b.group.cipher.decrypt(buf, b.batch)));
  if (!verify) return;
  for (const j of jobs) {
    if (!j.check) continue;
    const at = j.offset - bufferStart;
    if (j.check(buf.subarray(at, at + j.size), j)) {
      throw kwError(
        'MEDIA_WRONG_KEY',
        `the key for KID ${jobKid(j)} does not decrypt track ${j.trackId} (sample at ${j.offset} is not valid after decryption)`,
        {
          kid: jobKid(j),
          trackId: j.trackId,
          offset: j.offset,
        },
      );
    }
  }
}
