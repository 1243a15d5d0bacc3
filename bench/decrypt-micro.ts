/**
 * Micro benchmark of sample decryption: the addon against `openssl speed` (same OpenSSL
 * family, 16 KiB blocks) and against the node:crypto baseline, on 1 MiB samples.
 *
 * Throughput is MiB/s with 1 MiB = 2^20 bytes, counting every byte of the samples (clear
 * and protected), which is what a player cares about: for cbcs 1:9 only a tenth of the
 * protected bytes go through AES. Each figure is the median of WINDOWS windows of at least
 * WINDOW_SECONDS each, after a warm-up; min and max are reported too, as the machine may be
 * shared.
 *
 * `openssl speed` reuses one 16 KiB buffer that stays in L1/L2, while a 32 MiB batch streams
 * through L3 or RAM. The cache-resident figure (one 1 MiB sample, reused) is the
 * like-for-like comparison; the 32 MiB one is what a player sees.
 *
 * Run alone: node --import tsx bench/decrypt-micro.ts
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { jsCipherFactory } from '../src/media/js-sample-cipher.js';
import { nativeCipherFactory } from '../src/media/native-sample-cipher.js';
import type { SampleBatch, SampleCipher } from '../src/media/sample-crypto.js';
import { nativeInfo } from '../src/native/binding.js';

const MiB = 2 ** 20;
const SAMPLE_BYTES = MiB;
const SAMPLES = 32;
const WINDOWS = 3;
const WINDOW_SECONDS = 1;
const WARMUP_SECONDS = 0.3;
// A video-like map: per sample, NAL units of a clear header then a block-aligned protected body.
const NALS_PER_SAMPLE = 4;
const NAL_HEADER = 96;
const OPENSSL = '/usr/bin/openssl';
const CENC_VS_OPENSSL_TARGET = 0.85;

interface Figure {
  /** Median over the windows. */
  MiBps: number;
  minMiBps: number;
  maxMiBps: number;
  seconds: number;
}

type Layout = 'full' | 'subsample';
type Work = () => void | Promise<void>;

function makeBatch(scheme: SampleBatch['scheme'], layout: Layout, samples: number): SampleBatch {
  const table = new Uint32Array(samples * 4);
  const count = layout === 'full' ? 0 : NALS_PER_SAMPLE;
  for (let i = 0; i < samples; i++) table.set([i * SAMPLE_BYTES, SAMPLE_BYTES, 0, count], i * 4);
  const nal = SAMPLE_BYTES / NALS_PER_SAMPLE;
  const body = Math.floor((nal - NAL_HEADER) / 16) * 16;
  const subsamples = new Uint32Array(count * 2);
  for (let k = 0; k < count; k++) subsamples.set([nal - body, body], 2 * k);
  const pattern = scheme === 'cbcs' ? { cryptByteBlock: 1, skipByteBlock: 9 } : undefined;
  return {
    scheme,
    cryptByteBlock: pattern?.cryptByteBlock ?? 0,
    skipByteBlock: pattern?.skipByteBlock ?? 0,
    samples: table,
    ivs: new Uint8Array(randomBytes(16 * samples)),
    subsamples,
  };
}

/** Runs `work` (which processes `bytes`) repeatedly for at least `seconds`; MiB/s. */
async function window(work: Work, bytes: number, seconds: number): Promise<number> {
  const start = process.hrtime.bigint();
  let calls = 0;
  let elapsed = 0;
  do {
    await work();
    calls++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed < seconds);
  return (calls * bytes) / MiB / elapsed;
}

async function measure(work: Work, bytes: number): Promise<Figure> {
  await window(work, bytes, WARMUP_SECONDS);
  const rates: number[] = [];
  for (let w = 0; w < WINDOWS; w++) rates.push(await window(work, bytes, WINDOW_SECONDS));
  rates.sort((a, b) => a - b);
  return {
    MiBps: round(rates[Math.floor(rates.length / 2)] ?? 0),
    minMiBps: round(rates[0] ?? 0),
    maxMiBps: round(rates.at(-1) ?? 0),
    seconds: WINDOWS * WINDOW_SECONDS,
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

type OpensslFigure =
  { MiBps: number; version: string; command: string } | { MiBps: null; reason: string };

/** `openssl speed -evp aes-128-ctr` on 16 KiB blocks: the ceiling the addon should approach. */
function opensslSpeed(): OpensslFigure {
  if (!existsSync(OPENSSL)) return { MiBps: null, reason: `${OPENSSL} is not installed` };
  const args = ['speed', '-mr', '-evp', 'aes-128-ctr', '-bytes', '16384', '-seconds', '2'];
  const run = spawnSync(OPENSSL, args, { encoding: 'utf8', timeout: 30_000 });
  // -mr prints "+F:<n>:AES-128-CTR:<bytes per second>".
  const line = run.stdout?.split('\n').find((l) => l.startsWith('+F:'));
  const bytesPerSecond = Number(line?.split(':').at(-1));
  if (run.status !== 0 || !Number.isFinite(bytesPerSecond)) {
    const why = run.error?.message ?? (run.stderr?.trim() || 'no output');
    return { MiBps: null, reason: `openssl speed failed: ${why}` };
  }
  const version = spawnSync(OPENSSL, ['version'], { encoding: 'utf8' }).stdout.trim();
  return { MiBps: round(bytesPerSecond / MiB), version, command: `openssl ${args.join(' ')}` };
}

async function cipherFigures(
  cipher: SampleCipher,
  data: Uint8Array,
  native: boolean,
): Promise<Record<string, Figure>> {
  const total = SAMPLES * SAMPLE_BYTES;
  const cencFull = makeBatch('cenc', 'full', SAMPLES);
  const cencSub = makeBatch('cenc', 'subsample', SAMPLES);
  const cbcs = makeBatch('cbcs', 'subsample', SAMPLES);
  const out: Record<string, Figure> = {
    cencFullSample: await measure(() => cipher.decryptSync(data, cencFull), total),
    cencSubsample: await measure(() => cipher.decryptSync(data, cencSub), total),
    cbcs1of9Subsample: await measure(() => cipher.decryptSync(data, cbcs), total),
  };
  if (native) {
    const one = makeBatch('cenc', 'full', 1);
    const resident = data.subarray(0, SAMPLE_BYTES);
    out.cencCacheResident = await measure(() => cipher.decryptSync(resident, one), SAMPLE_BYTES);
    out.cencFullSampleAsync = await measure(() => cipher.decrypt(data, cencFull), total);
    out.cbcs1of9SubsampleAsync = await measure(() => cipher.decrypt(data, cbcs), total);
  }
  return out;
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a && b ? round(a / b) : null;
}

function ratiosOf(
  openssl: OpensslFigure,
  native: Record<string, Figure>,
  js: Record<string, Figure>,
): Record<string, number | null> {
  return {
    nativeCencVsOpenssl: ratio(native.cencFullSample?.MiBps, openssl.MiBps),
    nativeCencCacheResidentVsOpenssl: ratio(native.cencCacheResident?.MiBps, openssl.MiBps),
    nativeCbcs1of9VsCenc: ratio(native.cbcs1of9Subsample?.MiBps, native.cencFullSample?.MiBps),
    nativeCbcs1of9VsCencSameMap: ratio(
      native.cbcs1of9Subsample?.MiBps,
      native.cencSubsample?.MiBps,
    ),
    speedupCencVsJs: ratio(native.cencFullSample?.MiBps, js.cencFullSample?.MiBps),
    speedupCbcs1of9VsJs: ratio(native.cbcs1of9Subsample?.MiBps, js.cbcs1of9Subsample?.MiBps),
  };
}

function atLeast(value: number | null | undefined, want: number): boolean | null {
  return value === null || value === undefined ? null : value >= want;
}

/** Runs the whole micro benchmark and returns a JSON-able report. */
export async function runDecryptMicro(): Promise<object> {
  const data = new Uint8Array(randomBytes(SAMPLES * SAMPLE_BYTES));
  const key = new Uint8Array(randomBytes(16));
  const openssl = opensslSpeed();
  const nativeCipher = nativeCipherFactory.create(key);
  const native = await cipherFigures(nativeCipher, data, true);
  nativeCipher.close();
  const js = await cipherFigures(jsCipherFactory.create(key), data, false);
  const ratios = ratiosOf(openssl, native, js);
  const cencTarget = `>= ${CENC_VS_OPENSSL_TARGET}`;
  return {
    units: 'MiB/s (1 MiB = 2^20 bytes) of sample data, clear and protected bytes alike',
    workload: {
      bufferMiB: (SAMPLES * SAMPLE_BYTES) / MiB,
      sampleMiB: SAMPLE_BYTES / MiB,
      samplesPerCall: SAMPLES,
      subsampleMap: `${NALS_PER_SAMPLE} x [${NAL_HEADER}+ clear, block-aligned protected]`,
      figure: `median of ${WINDOWS} windows of >= ${WINDOW_SECONDS} s after a warm-up`,
    },
    openssl,
    addon: nativeInfo(),
    native,
    js,
    ratios,
    targets: {
      nativeCencVsOpenssl: {
        want: cencTarget,
        met: atLeast(ratios.nativeCencVsOpenssl, CENC_VS_OPENSSL_TARGET),
      },
      nativeCencCacheResidentVsOpenssl: {
        want: cencTarget,
        met: atLeast(ratios.nativeCencCacheResidentVsOpenssl, CENC_VS_OPENSSL_TARGET),
      },
      nativeCbcs1of9VsCenc: { want: '>= 1', met: atLeast(ratios.nativeCbcs1of9VsCenc, 1) },
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${JSON.stringify(await runDecryptMicro(), null, 2)}\n`);
}
