import type { SampleEncryptionInfo, Subsample, TrackEncryption } from '../cenc-types.js';
import type { SliceHeaderParser } from '../codec/slice-header-parser.js';
import type { SampleBatch } from '../sample-crypto.js';
import type { TrackFragmentEncryption } from './fragment-writer.js';
import { IvSequence, batchIv, type RandomSource } from './iv-sequence.js';
import type { CipherPool, ContentKey, KeySchedule } from './key-schedule.js';
import type { TrackProtectionParams } from './scheme-policy.js';
import { videoSubsamples } from './subsample-generator.js';

/** What a track encryptor needs. */
export interface TrackEncryptorOptions {
  readonly params: TrackProtectionParams;
  readonly schedule: KeySchedule;
  readonly ciphers: CipherPool;
  /** The video track's slice header parser; undefined for full-sample (audio) tracks. */
  readonly parser?: SliceHeaderParser;
  /** First IV (from --iv, already offset per track); random when undefined. */
  readonly ivStart?: Uint8Array;
  readonly random?: RandomSource;
}

/**
 * Encrypts one track fragment at a time, in place: builds each sample's subsample map from
 * the clear bitstream, assigns IVs, picks the fragment's key, and runs one cipher batch.
 */
export class TrackEncryptor {
  private readonly ivs: IvSequence;

  constructor(private readonly opts: TrackEncryptorOptions) {
    this.ivs = new IvSequence(opts.params, opts.ivStart, opts.random);
  }

  /** The track's protection parameters. */
  get params(): TrackProtectionParams {
    return this.opts.params;
  }

  /** The KID this track's samples use in fragment `index` (0-based). */
  kidFor(index: number): Uint8Array {
    return this.opts.schedule.keyFor(index).key.kid;
  }

  /** The track's 'tenc' defaults: the default KID, pattern, IV size and constant IV. */
  get defaults(): TrackEncryption {
    return this.encryptionFor(this.opts.schedule.defaultKey);
  }

  private encryptionFor(key: ContentKey): TrackEncryption {
    const p = this.opts.params;
    const base = {
      isProtected: 1,
      perSampleIvSize: p.perSampleIvSize,
      kid: key.kid,
      cryptByteBlock: p.cryptByteBlock,
      skipByteBlock: p.skipByteBlock,
    };
    const constantIv = this.ivs.constantIv;
    return constantIv ? { ...base, constantIv } : base;
  }

  /**
   * Encrypts the samples of fragment `index` lying back to back in `data` (sizes in order)
   * and returns the traf's encryption data.
   */
  async encrypt(
    data: Uint8Array,
    sizes: readonly number[],
    index: number,
  ): Promise<TrackFragmentEncryption> {
    const { key, rotated } = this.opts.schedule.keyFor(index);
    const entries = this.sampleEntries(data, sizes);
    await this.opts.ciphers.get(key).encrypt(data, this.batch(entries, sizes));
    const withSubsamples = this.opts.params.subsamples;
    return rotated
      ? { withSubsamples, entries, seig: this.encryptionFor(key) }
      : { withSubsamples, entries };
  }

  /** IVs and subsample maps, computed on the clear bytes before anything is encrypted. */
  private sampleEntries(data: Uint8Array, sizes: readonly number[]): SampleEncryptionInfo[] {
    const { parser, params } = this.opts;
    const out: SampleEncryptionInfo[] = [];
    let at = 0;
    for (const size of sizes) {
      const sample = data.subarray(at, at + size);
      const subsamples: Subsample[] = parser
        ? videoSubsamples(sample, parser, params.alignProtected)
        : [];
      out.push({ iv: this.ivs.next(size), subsamples });
      at += size;
    }
    return out;
  }

  private batch(entries: readonly SampleEncryptionInfo[], sizes: readonly number[]): SampleBatch {
    const n = entries.length;
    const samples = new Uint32Array(4 * n);
    const ivs = new Uint8Array(16 * n);
    const subsamples = new Uint32Array(2 * entries.reduce((k, e) => k + e.subsamples.length, 0));
    const constantIv = this.ivs.constantIv;
    let at = 0;
    let sub = 0;
    entries.forEach((e, i) => {
      samples.set([at, sizes[i] ?? 0, sub, e.subsamples.length], 4 * i);
      ivs.set(batchIv(e.iv, constantIv), 16 * i);
      for (const s of e.subsamples) subsamples.set([s.clear, s.protected], 2 * sub++);
      at += sizes[i] ?? 0;
    });
    const { scheme, cryptByteBlock, skipByteBlock } = this.opts.params;
    return { scheme, cryptByteBlock, skipByteBlock, samples, ivs, subsamples };
  }
}
