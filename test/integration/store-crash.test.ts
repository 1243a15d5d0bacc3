import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LicenseStore, type UsageState } from '../../src/store/index.js';
import type { CrashOp } from '../helpers/store-crash-child.js';
import { prng, randInt, sha256, tempDir } from '../helpers/store-fixtures.js';

/**
 * Crash safety of the license store under SIGKILL. Children (`node --import tsx`) make
 * random changes and print an acknowledgement after each one resolves; the parent kills
 * them at seeded random moments (some during open and its repair), then opens the store and
 * checks that it opens without problems and that every acknowledged change is there with
 * its latest acknowledged usage. The one change under way at the kill may have landed or
 * not. A node+tsx start costs ~0.2-0.4 s of CPU, far more than a child lives (tens of ms),
 * so each lane starts its next child while the current one runs (it waits on stdin), and
 * lanes run in parallel in separate directories.
 */

const CHILD = path.resolve(import.meta.dirname, '../helpers/store-crash-child.ts');
const ROOT = path.resolve(import.meta.dirname, '../..');
const LANES = 3;
/** Kills per lane; `KEYWARDEN_STORE_CRASH_KILLS` raises it for a longer soak. */
const KILLS_PER_LANE = Math.max(70, Number(process.env.KEYWARDEN_STORE_CRASH_KILLS ?? 0));

interface Usage {
  state: UsageState['state'];
  firstPlayMs?: number;
  lastPlayMs?: number;
  playCount: number;
}
interface ModelEntry {
  body: string;
  kids: string[];
  contentId: string;
  usage: Usage;
}
type Model = Map<string, ModelEntry>;

/** A child process and what it printed. */
class Child {
  readonly proc: ChildProcess;
  readonly started = performance.now();
  readonly lines: string[] = [];
  loadedMs = NaN;
  private partial = '';
  private stderr = '';
  private readonly exit: Promise<number | null>;
  private waiters: (() => void)[] = [];

  constructor(dir: string, keyHex: string, seed: number) {
    this.proc = spawn(
      process.execPath,
      ['--import', 'tsx', CHILD, dir, keyHex, String(seed), '--wait'],
      {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    this.proc.stdout!.on('data', (d: Buffer) => {
      const text = this.partial + d.toString();
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      for (const l of parts) {
        if (l === 'W') this.loadedMs = performance.now() - this.started;
        this.lines.push(l);
      }
      this.wake();
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exit = new Promise((resolve) =>
      this.proc.on('exit', (code) => (this.wake(), resolve(code))),
    );
  }

  /** Resolves when a line equal to `tag` was printed, or the child exited. */
  async waitFor(tag: string): Promise<void> {
    while (
      !this.lines.includes(tag) &&
      this.proc.exitCode === null &&
      this.proc.signalCode === null
    ) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
    if (!this.lines.includes(tag)) {
      throw new Error(`child exited before '${tag}': ${this.lines.join(' | ')} ${this.stderr}`);
    }
  }

  /** Resolves when `n` changes were acknowledged, or the child exited. */
  async waitForAcks(n: number): Promise<void> {
    await this.waitFor('R');
    while (
      this.lines.filter((l) => l.startsWith('A ')).length < n &&
      this.proc.exitCode === null &&
      this.proc.signalCode === null
    ) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  go(): void {
    this.proc.stdin!.write('go\n');
  }

  async kill(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.exit;
  }

  get errorOutput(): string {
    return this.stderr;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}

function applyOp(e: ModelEntry | undefined, op: CrashOp): ModelEntry | undefined {
  switch (op.op) {
    case 'put':
      return {
        body: op.body,
        kids: op.kids,
        contentId: op.contentId,
        usage: e ? e.usage : { state: 'active', playCount: 0 },
      };
    case 'use':
      if (!e) throw new Error(`use of unknown ${op.id}`);
      return {
        ...e,
        usage: {
          ...e.usage,
          firstPlayMs: e.usage.firstPlayMs ?? op.t,
          lastPlayMs: op.t,
          playCount: e.usage.playCount + 1,
        },
      };
    case 'release':
      if (!e) throw new Error(`release of unknown ${op.id}`);
      return { ...e, usage: { ...e.usage, state: 'release-pending' } };
    case 'del':
      return undefined;
  }
}

const stripUsage = (u: UsageState): Usage => {
  const { generation: _g, ...rest } = u;
  void _g;
  return rest;
};

/** Opens the store and checks it against the acknowledged model; returns the actual state. */
async function verify(
  dir: string,
  key: Buffer,
  model: Model,
  pending: CrashOp | undefined,
  failures: string[],
): Promise<Model> {
  const s = await LicenseStore.open({ dir, storageKey: key });
  try {
    if (s.problems.length) {
      failures.push(
        `problems: ${s.problems.map((p) => `${p.error.code} ${p.error.message}`).join('; ')}`,
      );
    }
    const actual: Model = new Map();
    const ids = new Set([...model.keys(), ...s.list().map((e) => e.id)]);
    for (const id of ids) {
      const acked = model.get(id);
      const landed = pending?.id === id ? applyOp(acked, pending) : acked;
      const entry = s.entry(id);
      let got: ModelEntry | undefined;
      if (entry) {
        const lic = await s.get(id);
        got = {
          body: sha256(lic.body),
          kids: [...lic.kids],
          contentId: lic.contentId,
          usage: stripUsage(lic.usage),
        };
        if (!isDeepStrictEqual(stripUsage(entry.usage), got.usage)) {
          failures.push(
            `${id}: index usage ${JSON.stringify(entry.usage)} != file ${JSON.stringify(lic.usage)}`,
          );
        }
        actual.set(id, got);
      }
      if (!isDeepStrictEqual(got, acked) && !isDeepStrictEqual(got, landed)) {
        failures.push(
          `${id}: found ${JSON.stringify(got)}, acknowledged ${JSON.stringify(acked)}, pending ${JSON.stringify(pending)}`,
        );
      }
    }
    return actual;
  } finally {
    await s.close();
  }
}

/** One lane: a directory, a sequence of children, a kill each. */
async function lane(root: string, index: number, failures: string[]) {
  const dir = path.join(root, `lane-${index}`);
  const key = randomBytes(32);
  const rand = prng(9000 + index);
  let model: Model = new Map();
  let ops = 0;
  let kills = 0;
  const loads: number[] = [];
  let next: Child | undefined = new Child(dir, key.toString('hex'), index * 1000);
  while (next) {
    const child: Child = next;
    await child.waitFor('W');
    loads.push(child.loadedMs);
    next =
      kills + 1 < KILLS_PER_LANE
        ? new Child(dir, key.toString('hex'), index * 1000 + kills + 1)
        : undefined;
    child.go();
    if (rand() < 0.15) {
      await sleep(randInt(rand, 0, 8)); // during open, and its repair of the previous crash
    } else {
      // After a random number of acknowledged changes, a little into the next one (a
      // change takes ~1-3 ms: five fsyncs); counting acks keeps the work per child the
      // same however loaded the machine is.
      await child.waitForAcks(randInt(rand, 0, 24));
      await sleep(randInt(rand, 0, 3));
    }
    await child.kill();
    kills++;
    let pending: CrashOp | undefined;
    for (const l of child.lines) {
      if (l.startsWith('E '))
        failures.push(`lane ${index}: child failed: ${l} ${child.errorOutput}`);
      if (l.startsWith('B ')) pending = JSON.parse(l.slice(2)) as CrashOp;
      if (l.startsWith('A ') && pending) {
        const after = applyOp(model.get(pending.id), pending);
        if (after) model.set(pending.id, after);
        else model.delete(pending.id);
        ops++;
        pending = undefined;
      }
    }
    model = await verify(dir, key, model, pending, failures);
    if (failures.length) {
      await next?.kill();
      break;
    }
  }
  return { kills, ops, loads, licenses: model.size };
}

let root: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir: root, cleanup } = await tempDir('kw-store-crash-')));
afterAll(() => cleanup());

describe('license store crash safety (SIGKILL)', () => {
  it('keeps every acknowledged change through 200+ kills', async () => {
    const t0 = performance.now();
    const failures: string[] = [];
    const results = await Promise.all(
      Array.from({ length: LANES }, (_, i) => lane(root, i, failures)),
    );
    const kills = results.reduce((n, r) => n + r.kills, 0);
    const ops = results.reduce((n, r) => n + r.ops, 0);
    const loads = results.flatMap((r) => r.loads).sort((a, b) => a - b);
    const ms = Math.round(performance.now() - t0);
    console.log(
      `store crash test: ${kills} kills, ${ops} acknowledged ops verified, ` +
        `${results.map((r) => r.licenses).join('/')} licenses at the end, ${ms} ms; ` +
        `child node+tsx load median ${Math.round(loads[loads.length >> 1] ?? NaN)} ms`,
    );
    expect(failures).toEqual([]);
    expect(kills).toBeGreaterThanOrEqual(200);
    expect(ops).toBeGreaterThan(kills * 5); // children got well into their work
  }, 300_000);
});
