import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ContentKey } from '../../src/media/decrypt/index.js';
import { encryptFragmented, type EncryptSpec } from '../helpers/media/cenc-writer.js';
import { interopManifest, interopPath } from '../helpers/media/interop.js';
import { findBoxes, mutate, Rng, type BoxSpot } from './mutator.js';
import type { TargetOutcome } from './target.js';

/** A valid file to mutate, with the keys that decrypt it. */
export interface FuzzSeed {
  readonly name: string;
  readonly bytes: Buffer;
  readonly keys: readonly ContentKey[];
}

/** Options of a campaign. */
export interface CampaignOptions {
  readonly count: number;
  readonly seed: number;
  /** Per-input time limit; an input over it is a hang. */
  readonly timeoutMs: number;
  /** Where reproducers of failures go. */
  readonly crashDir: string;
  readonly workers?: number;
  readonly cipher?: 'native' | 'js';
}

/** A failing input. */
export interface FuzzFailure {
  readonly kind: 'crash' | 'hang';
  readonly seed: string;
  readonly index: number;
  readonly file: string;
  readonly error?: string;
}

/** What a campaign found. */
export interface CampaignSummary {
  readonly inputs: number;
  readonly ok: number;
  readonly coded: number;
  readonly codes: Record<string, number>;
  readonly failures: readonly FuzzFailure[];
  readonly seeds: readonly string[];
  readonly elapsedMs: number;
}

/** The interop files plus test-encrypted variants (PIFF, cbc1, aux in mdat, key rotation). */
export function defaultSeeds(): FuzzSeed[] {
  const manifest = interopManifest();
  if (!manifest) return [];
  const seeds: FuzzSeed[] = manifest.map((e) => ({
    name: e.file,
    bytes: readFileSync(interopPath(e.file)),
    keys: [{ key: Buffer.from(e.key, 'hex') }],
  }));
  const clear = readFileSync(interopPath('cbcsdec.mp4'));
  const k = { kid: new Uint8Array(16).fill(1), key: new Uint8Array(16).fill(0x41) };
  const r = { kid: new Uint8Array(16).fill(2), key: new Uint8Array(16).fill(0x42) };
  const keys = new Map([[1, k]]);
  const specs: Record<string, EncryptSpec> = {
    'piff-cbc': {
      scheme: 'piff',
      piffAlgorithm: 2,
      piffOverride: true,
      keys,
      ivSize: 16,
      subsamples: true,
    },
    'cens-aux-in-mdat': {
      scheme: 'cens',
      keys,
      ivSize: 8,
      pattern: [1, 9],
      subsamples: true,
      aux: 'saiz-mdat',
    },
    'cenc-rotation': {
      scheme: 'cenc',
      keys,
      ivSize: 8,
      subsamples: true,
      rotation: { mode: 'local', keys: [k, r] },
    },
  };
  for (const [name, spec] of Object.entries(specs))
    seeds.push({ name, bytes: encryptFragmented(clear, spec), keys: [k, r] });
  return seeds;
}

/** Runs inputs through a worker, restarting it after a hang. */
class WorkerSlot {
  private worker!: Worker;
  private ready!: Promise<void>;
  private pending?: { resolve: (o: TargetOutcome | 'hang') => void; timer: NodeJS.Timeout };

  constructor(private readonly cipher: 'native' | 'js') {
    this.start();
  }

  private start(): void {
    // Loader hooks given by --import do not reach workers on Node 20: register tsx inside it.
    const url = JSON.stringify(new URL('./worker.ts', import.meta.url).href);
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${url}); })`;
    this.worker = new Worker(boot, { eval: true, workerData: { cipher: this.cipher } });
    const worker = this.worker;
    this.ready = new Promise((resolve) => worker.once('message', () => resolve()));
    this.worker.on(
      'message',
      (m: { outcome?: TargetOutcome }) => m.outcome && this.settle(m.outcome),
    );
    this.worker.on('error', (err) =>
      this.settle({ kind: 'crash', error: `worker died: ${err.stack ?? String(err)}` }),
    );
  }

  private settle(o: TargetOutcome | 'hang'): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(o);
  }

  async run(
    input: Buffer,
    keys: readonly ContentKey[],
    timeoutMs: number,
  ): Promise<TargetOutcome | 'hang'> {
    // Worker start-up (loading tsx and the modules) does not count against the input.
    await this.ready;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        void this.worker.terminate();
        this.settle('hang');
        this.start();
      }, timeoutMs);
      this.pending = { resolve, timer };
      this.worker.postMessage({ id: 0, input, keys });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** The `index`-th input of a campaign: deterministic from (seed, index) whatever the worker count. */
export function campaignInput(
  seeds: readonly FuzzSeed[],
  spots: readonly BoxSpot[][],
  seed: number,
  index: number,
): { seed: FuzzSeed; input: Buffer } {
  const rng = new Rng((Math.imul(seed, 0x9e3779b1) ^ index) >>> 0);
  const k = rng.int(seeds.length);
  return { seed: seeds[k]!, input: mutate(rng, seeds[k]!.bytes, spots[k]!) };
}

function saveFailure(
  opts: CampaignOptions,
  index: number,
  seed: FuzzSeed,
  input: Buffer,
  kind: 'crash' | 'hang',
  error?: string,
): FuzzFailure {
  mkdirSync(opts.crashDir, { recursive: true });
  const file = path.join(
    opts.crashDir,
    `${kind}-${opts.seed}-${index}-${seed.name.replace(/[^\w.-]/g, '_')}`,
  );
  writeFileSync(file, input);
  writeFileSync(
    `${file}.txt`,
    `seed ${opts.seed} index ${index} from ${seed.name}\nkeys ${seed.keys.map((k) => Buffer.from(k.key).toString('hex')).join(' ')}\n${error ?? 'timed out'}\n`,
  );
  return {
    kind,
    seed: seed.name,
    index,
    file,
    ...(error !== undefined && { error: error.split('\n')[0] }),
  };
}

/** Runs `opts.count` mutated inputs; every one must decrypt or throw a KeywardenError in time. */
export async function runCampaign(
  seeds: readonly FuzzSeed[],
  opts: CampaignOptions,
): Promise<CampaignSummary> {
  const started = Date.now();
  const spots = seeds.map((s) => findBoxes(s.bytes));
  const slots = Array.from(
    { length: opts.workers ?? 1 },
    () => new WorkerSlot(opts.cipher ?? 'js'),
  );
  const codes: Record<string, number> = {};
  const failures: FuzzFailure[] = [];
  let ok = 0;
  let next = 0;
  const loop = async (slot: WorkerSlot): Promise<void> => {
    while (next < opts.count) {
      const index = next++;
      const { seed, input } = campaignInput(seeds, spots, opts.seed, index);
      const outcome = await slot.run(input, seed.keys, opts.timeoutMs);
      if (outcome === 'hang') failures.push(saveFailure(opts, index, seed, input, 'hang'));
      else if (outcome.kind === 'crash')
        failures.push(saveFailure(opts, index, seed, input, 'crash', outcome.error));
      else if (outcome.kind === 'ok') ok++;
      else codes[outcome.code!] = (codes[outcome.code!] ?? 0) + 1;
    }
  };
  try {
    await Promise.all(slots.map(loop));
  } finally {
    await Promise.all(slots.map((s) => s.close()));
  }
  const coded = Object.values(codes).reduce((a, b) => a + b, 0);
  return {
    inputs: opts.count,
    ok,
    coded,
    codes,
    failures,
    seeds: seeds.map((s) => s.name),
    elapsedMs: Date.now() - started,
  };
}
