import { AtomicFile } from '../../io/atomic-file.js';
import { kwError } from '../../errors/index.js';
import { fromUuid, toHex } from '../bytes.js';
import { SYSTEM_IDS, type ProtectionSystemHeader } from '../cenc-types.js';
import { createSliceHeaderParser } from '../codec/slice-header-parser.js';
import type { Track } from '../movie.js';
import { encodePsshData } from '../pssh-data.js';
import { FileSource, type ByteSource } from '../stream/byte-source.js';
import type { SampleCipherFactory } from '../sample-crypto.js';
import {
  NON_SYNC_SAMPLE_FLAGS,
  SYNC_SAMPLE_FLAGS,
  writeFragment,
  type TrackFragmentPlan,
} from './fragment-writer.js';
import { Fragmenter, type FragmentCut } from './fragmenter.js';
import { writeInitSegment, type InitTrack } from './init-segment.js';
import { CipherPool, KeySchedule, type ContentKey } from './key-schedule.js';
import {
  keyPeriodOf,
  resolvePackageOptions,
  type PackageOptions,
  type ResolvedPackageOptions,
} from './package-options.js';
import { openSampleSource, type SampleRef, type SampleSource } from './sample-source.js';
import { MAX_SIDX_REFERENCES, segmentIndexSize, writeSegmentIndex } from './segment-index.js';
import { trackProtection } from './scheme-policy.js';
import { TrackEncryptor } from './track-encryptor.js';
import { classifyTrack, type TrackRole } from './track-plan.js';

/** What was packaged, per track. */
export interface PackagedTrack {
  readonly trackId: number;
  readonly kind: TrackRole['kind'];
  readonly format: string;
  readonly encrypted: boolean;
  /** Default KID (hex) of an encrypted track. */
  readonly kid?: string;
  readonly samples: number;
}

/** The result of {@link packageFile}. */
export interface PackageReport {
  readonly scheme: string;
  readonly fragments: number;
  readonly tracks: readonly PackagedTrack[];
  /** Every KID of the content (hex), as listed in the pssh boxes. */
  readonly kids: readonly string[];
  /** Which cipher implementation did the AES. */
  readonly cipher: string;
  /** Key periods of the stream (1 without rotation keys). */
  readonly keyPeriods: number;
  /** True when every moof carries pssh boxes (live streams, `psshInMoof`). */
  readonly psshInMoof: boolean;
}

/** One output track while packaging. */
interface TrackJob {
  readonly track: Track;
  readonly role: TrackRole;
  readonly encryptor?: TrackEncryptor;
  samples: number;
}

/**
 * Packages a clear MP4 (flat or fragmented; H.264, H.265, AAC) into fragmented Common
 * Encryption (ISO/IEC 23001-7): init segment with encv/enca, sinf/tenc and pssh boxes, then
 * moof+mdat fragments with senc/saiz/saio. The output appears atomically, or not at all.
 */
export async function packageFile(options: PackageOptions): Promise<PackageReport> {
  const opts = resolvePackageOptions(options);
  const factory = opts.cipherFactory ?? (await defaultCipherFactory());
  const file = await FileSource.open(opts.input);
  const ciphers = new CipherPool(factory);
  let out: AtomicFile | undefined;
  try {
    const source = await openSampleSource(file);
    const jobs = planJobs(source.movie.tracks, opts, ciphers);
    const expected = await countFragments(source, jobs, opts);
    const periods = expected === 0 ? 0 : keyPeriodOf(opts, expected - 1) + 1;
    checkEmbeddedCount(opts, periods);
    out = await AtomicFile.create(opts.output);
    const kids = contentKids(opts);
    const init = writeInitSegment({
      movie: source.movie,
      tracks: jobs.map(initTrack),
      pssh: psshBoxes(opts, kids),
    });
    await out.write(init);
    const withIndex = expected > 0 && expected <= MAX_SIDX_REFERENCES;
    if (withIndex) await out.write(new Uint8Array(segmentIndexSize(expected)));
    const fragments = await writeFragments(file, source, jobs, opts, out, expected);
    if (withIndex) await out.write(segmentIndex(fragments, expected, leadTrack(jobs)), init.length);
    await out.commit();
    return report(opts, jobs, fragments.length, kids, factory.name, periods);
  } catch (err) {
    await out?.abort();
    throw err;
  } finally {
    ciphers.close();
    await file.close();
  }
}

/**
 * How many fragments {@link packageFile} will write for `options` (a dry run over the
 * input's sample tables; nothing is encrypted or written). Live packaging uses it to size
 * key periods and issue one embedded license per period before packaging.
 */
export async function countPackageFragments(options: PackageOptions): Promise<number> {
  const opts = resolvePackageOptions(options);
  const file = await FileSource.open(opts.input);
  const ciphers = new CipherPool({ name: 'none', create: noCipher });
  try {
    const source = await openSampleSource(file);
    return await countFragments(source, planJobs(source.movie.tracks, opts, ciphers), opts);
  } finally {
    ciphers.close();
    await file.close();
  }
}

function noCipher(): never {
  throw new Error('internal: a dry run does not encrypt');
}

/** One embedded license per key period, or none at all. */
function checkEmbeddedCount(opts: ResolvedPackageOptions, periods: number): void {
  const n = opts.embeddedLicenses.length;
  if (n > 0 && n !== periods)
    throw kwError(
      'CLI_USAGE',
      `the stream has ${periods} key period(s) but ${n} embedded license(s) were given; give one per period`,
      { periods, embeddedLicenses: n },
    );
}

/** The native addon when it loads, else node:crypto (same results, slower). */
async function defaultCipherFactory(): Promise<SampleCipherFactory> {
  try {
    const { nativeCipherFactory } = await import('../native-sample-cipher.js');
    nativeCipherFactory.create(new Uint8Array(16)).close();
    return nativeCipherFactory;
  } catch {
    // The addon is optional at run time: fall back to the JS ciphers.
    const { jsCipherFactory } = await import('../js-sample-cipher.js');
    return jsCipherFactory;
  }
}

function planJobs(
  tracks: readonly Track[],
  opts: ResolvedPackageOptions,
  ciphers: CipherPool,
): TrackJob[] {
  const jobs: TrackJob[] = [];
  let ordinal = 0;
  for (const track of tracks) {
    const role = classifyTrack(track);
    if (role.kind === 'clear') {
      jobs.push({ track, role, samples: 0 });
      continue;
    }
    const params = trackProtection(opts.scheme, role.kind, opts.iv?.length);
    const own = role.kind === 'audio' ? opts.audioKey : undefined;
    const schedule = own
      ? new KeySchedule(own)
      : new KeySchedule(opts.key, opts.rotationKeys, opts.rotateEvery);
    const parser =
      role.kind === 'video' ? createSliceHeaderParser(role.codec, role.config) : undefined;
    const ivStart = opts.iv ? offsetIv(opts.iv, ordinal, opts.scheme === 'cbcs') : undefined;
    const encryptor = new TrackEncryptor({
      params,
      schedule,
      ciphers,
      ...(parser && { parser }),
      ...(ivStart && { ivStart }),
      ...(opts.random && { random: opts.random }),
    });
    jobs.push({ track, role, encryptor, samples: 0 });
    ordinal++;
  }
  if (!jobs.some((j) => j.encryptor))
    throw kwError('MEDIA_UNSUPPORTED', 'the input has no video or audio track to encrypt');
  return jobs;
}

/**
 * The --iv of the n-th encrypted track: the top byte plus n, so that two tracks under one key
 * never count through the same IVs (a CTR keystream must never repeat, §9.1). The constant
 * IV of cbcs is shared by design (§10.4.1).
 */
export function offsetIv(iv: Uint8Array, n: number, constant: boolean): Uint8Array {
  const out = Uint8Array.from(iv);
  if (!constant) out[0] = ((out[0] ?? 0) + n) & 0xff;
  return out;
}

function initTrack(job: TrackJob): InitTrack {
  if (!job.encryptor) return { track: job.track };
  const p = job.encryptor.params;
  return {
    track: job.track,
    protection: { scheme: p.scheme, tencVersion: p.tencVersion, defaults: job.encryptor.defaults },
  };
}

/** Every KID, deduplicated, default first. */
function contentKids(opts: ResolvedPackageOptions): Uint8Array[] {
  const keys: ContentKey[] = [
    opts.key,
    ...(opts.audioKey ? [opts.audioKey] : []),
    ...opts.rotationKeys,
  ];
  const seen = new Set<string>();
  return keys
    .map((k) => k.kid)
    .filter((kid) => !seen.has(toHex(kid)) && seen.add(toHex(kid)) !== undefined);
}

/** keywarden's pssh (KIDs, content id, license URL, scheme) and the W3C common pssh (KIDs only). */
function psshBoxes(opts: ResolvedPackageOptions, kids: Uint8Array[]): ProtectionSystemHeader[] {
  const data = encodePsshData({
    keyIds: kids,
    contentId: opts.contentId,
    licenseUrl: opts.licenseUrl ?? '',
    policyHint: opts.policyHint ?? '',
    protectionScheme: opts.scheme,
  });
  return [
    { version: 1, systemId: fromUuid(SYSTEM_IDS.keywarden), kids, data },
    { version: 1, systemId: fromUuid(SYSTEM_IDS.common), kids, data: new Uint8Array(0) },
  ];
}

/**
 * The pssh boxes of fragment `index` in a live stream: keywarden's (version 1, KIDs and
 * PsshData with the period's embedded license, if any) and the W3C common pssh, both
 * listing the KIDs of the fragment's key period, then those of the next period when the
 * stream has one, so that a player acquires the next key before the first sample needing it.
 */
export function fragmentPssh(
  opts: ResolvedPackageOptions,
  jobs: readonly { readonly encryptor?: Pick<TrackEncryptor, 'kidFor'> | undefined }[],
  index: number,
  fragmentCount: number,
): ProtectionSystemHeader[] {
  const encryptors = jobs.flatMap((j) => (j.encryptor ? [j.encryptor] : []));
  const period = keyPeriodOf(opts, index);
  const nextStart = (period + 1) * opts.rotateEvery;
  const hasNext = opts.rotationKeys.length > 0 && nextStart < fragmentCount;
  const seen = new Set<string>();
  const kids = [
    ...encryptors.map((e) => e.kidFor(index)),
    ...(hasNext ? encryptors.map((e) => e.kidFor(nextStart)) : []),
  ].filter((kid) => !seen.has(toHex(kid)) && seen.add(toHex(kid)) !== undefined);
  const data = encodePsshData({
    keyIds: kids,
    contentId: opts.contentId,
    licenseUrl: opts.licenseUrl ?? '',
    policyHint: opts.policyHint ?? '',
    protectionScheme: opts.scheme,
    embeddedLicense: opts.embeddedLicenses[period] ?? new Uint8Array(0),
  });
  return [
    { version: 1, systemId: fromUuid(SYSTEM_IDS.keywarden), kids, data },
    { version: 1, systemId: fromUuid(SYSTEM_IDS.common), kids, data: new Uint8Array(0) },
  ];
}

/** The track fragments are cut on: the first video track, else the first encrypted one. */
function leadTrack(jobs: readonly TrackJob[]): TrackJob {
  const lead =
    jobs.find((j) => j.role.kind === 'video') ?? jobs.find((j) => j.encryptor) ?? jobs[0];
  if (!lead) throw kwError('MEDIA_UNSUPPORTED', 'the input has no tracks');
  return lead;
}

function newFragmenter(jobs: readonly TrackJob[], lead: TrackJob, fragmentMs: number): Fragmenter {
  return new Fragmenter(
    jobs.map((j) => ({ id: j.track.id, timescale: j.track.media.timescale, lead: j === lead })),
    fragmentMs,
  );
}

/** A metadata-only dry run of the fragmenter: how many fragments the output will have. */
async function countFragments(
  source: SampleSource,
  jobs: readonly TrackJob[],
  opts: ResolvedPackageOptions,
): Promise<number> {
  const fragmenter = newFragmenter(jobs, leadTrack(jobs), opts.fragmentMs);
  let count = 0;
  for await (const batch of source.batches()) count += fragmenter.push(batch).length;
  return count + fragmenter.finish().length;
}

/** Writes every fragment after the init segment; returns what the sidx needs about each. */
async function writeFragments(
  file: ByteSource,
  source: SampleSource,
  jobs: readonly TrackJob[],
  opts: ResolvedPackageOptions,
  out: AtomicFile,
  expected: number,
): Promise<FragmentSummary[]> {
  const lead = leadTrack(jobs);
  const fragmenter = newFragmenter(jobs, lead, opts.fragmentMs);
  const summaries: FragmentSummary[] = [];
  const emit = async (cuts: FragmentCut[]): Promise<void> => {
    for (const cut of cuts) {
      let size = 0;
      const pssh = opts.psshInMoof ? fragmentPssh(opts, jobs, cut.index, expected) : [];
      for (const buf of await fragmentBuffers(file, cut, jobs, pssh)) {
        await out.write(buf);
        size += buf.length;
      }
      summaries.push({ size, ...leadTiming(cut, lead) });
    }
  };
  for await (const batch of source.batches()) {
    await emit(fragmenter.push(batch));
    const last = batch[batch.length - 1];
    opts.onProgress?.(Math.min(file.size, (last?.offset ?? 0) + (last?.size ?? 0)), file.size);
  }
  await emit(fragmenter.finish());
  opts.onProgress?.(file.size, file.size);
  return summaries;
}

/** The sidx over every fragment (its space was reserved from the dry run's count). */
function segmentIndex(
  fragments: readonly FragmentSummary[],
  expected: number,
  lead: TrackJob,
): Buffer {
  if (fragments.length !== expected) {
    throw new Error(
      `internal: the dry run counted ${expected} fragments, the packager wrote ${fragments.length}`,
    );
  }
  return writeSegmentIndex({
    referenceId: lead.track.id,
    timescale: lead.track.media.timescale,
    earliestPresentationTime: Math.max(0, fragments[0]?.earliestCts ?? 0),
    references: fragments,
  });
}

/** A written fragment, for the sidx. */
interface FragmentSummary {
  readonly size: number;
  readonly duration: number;
  readonly startsWithSap: boolean;
  readonly earliestCts: number;
}

/** Duration, SAP and earliest presentation time of the lead track's part of a fragment. */
function leadTiming(cut: FragmentCut, lead: TrackJob): Omit<FragmentSummary, 'size'> {
  const samples = cut.tracks.get(lead.track.id) ?? [];
  return {
    duration: samples.reduce((n, s) => n + s.duration, 0),
    startsWithSap: samples[0]?.sync ?? false,
    earliestCts: samples.length > 0 ? Math.min(...samples.map((s) => s.cts)) : 0,
  };
}

/** Reads, encrypts and serializes one fragment. */
async function fragmentBuffers(
  file: ByteSource,
  cut: FragmentCut,
  jobs: readonly TrackJob[],
  pssh: readonly ProtectionSystemHeader[],
): Promise<Uint8Array[]> {
  const plans: TrackFragmentPlan[] = [];
  for (const job of jobs) {
    const samples = cut.tracks.get(job.track.id);
    const first = samples?.[0];
    if (!samples || !first) continue;
    const data = await readSamples(file, samples);
    const encryption = job.encryptor
      ? await job.encryptor.encrypt(
          data,
          samples.map((s) => s.size),
          cut.index,
        )
      : undefined;
    job.samples += samples.length;
    plans.push({
      trackId: job.track.id,
      baseMediaDecodeTime: first.dts,
      samples: samples.map((s) => ({
        size: s.size,
        duration: s.duration,
        compositionOffset: s.cts - s.dts,
        flags: s.sync ? SYNC_SAMPLE_FLAGS : NON_SYNC_SAMPLE_FLAGS,
      })),
      data: [data],
      ...(encryption && { encryption }),
    });
  }
  return writeFragment(cut.index + 1, plans, pssh);
}

/** Reads samples back to back into one buffer, one read per run of adjacent samples. */
async function readSamples(file: ByteSource, samples: readonly SampleRef[]): Promise<Uint8Array> {
  const total = samples.reduce((n, s) => n + s.size, 0);
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  let i = 0;
  while (i < samples.length) {
    const start = samples[i]!;
    let length = start.size;
    let j = i + 1;
    while (j < samples.length && samples[j]!.offset === start.offset + length)
      length += samples[j++]!.size;
    await file.read(buf.subarray(at, at + length), start.offset);
    at += length;
    i = j;
  }
  return buf;
}

function report(
  opts: ResolvedPackageOptions,
  jobs: readonly TrackJob[],
  fragments: number,
  kids: Uint8Array[],
  cipher: string,
  keyPeriods: number,
): PackageReport {
  return {
    scheme: opts.scheme,
    fragments,
    tracks: jobs.map((j) => ({
      trackId: j.track.id,
      kind: j.role.kind,
      format: j.role.format,
      encrypted: j.encryptor !== undefined,
      ...(j.encryptor && { kid: toHex(j.encryptor.defaults.kid) }),
      samples: j.samples,
    })),
    kids: kids.map(toHex),
    cipher,
    keyPeriods,
    psshInMoof: opts.psshInMoof,
  };
}
