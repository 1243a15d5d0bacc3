/**
 * Child process of test/integration/store-crash.test.ts and the lock tests:
 * `node --import tsx store-crash-child.ts DIR KEY_HEX SEED [--wait] [--hold]`.
 *
 * - `--wait`: load everything, print `W`, then wait for a line on stdin before opening the
 *   store (the parent starts the next child while the previous one still runs).
 * - Opens the store and prints `R`.
 * - `--hold`: then just waits (a lock holder).
 * - Otherwise runs random changes forever. Before each it prints `B <json>` (what it is
 *   about to do); after the change resolved (is durable) it prints `A <json>`. Lines are
 *   written with writeSync, so a line printed is in the pipe before the next step starts.
 *   Any error prints `E <json>` and exits 1.
 */
import { writeSync } from 'node:fs';
import { isKeywardenError } from '../../src/errors/index.js';
import { LicenseStore } from '../../src/store/index.js';
import { makeRecord, prng, randInt, sha256 } from './store-fixtures.js';

/** One change the child makes, as printed in its `B` line. */
export type CrashOp =
  | { op: 'put'; id: string; kids: string[]; contentId: string; body: string }
  | { op: 'use'; id: string; t: number }
  | { op: 'release'; id: string }
  | { op: 'del'; id: string };

/** Compaction threshold the child uses, low so that kills also land in compactions. */
export const CHILD_COMPACT_AFTER_FRAMES = 12;

function line(text: string): void {
  const buf = Buffer.from(`${text}\n`);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

async function waitForLine(): Promise<void> {
  await new Promise<void>((resolve) => {
    process.stdin.once('data', () => resolve());
  });
  process.stdin.pause();
}

async function main(): Promise<void> {
  const [dir, keyHex, seedText, ...flags] = process.argv.slice(2);
  if (!dir || !keyHex || !seedText) throw new Error('usage: DIR KEY_HEX SEED [--wait] [--hold]');
  const seed = Number(seedText);
  const rand = prng(seed);
  if (flags.includes('--wait')) {
    line('W');
    await waitForLine();
  }
  const store = await LicenseStore.open({
    dir,
    storageKey: Buffer.from(keyHex, 'hex'),
    compactAfterFrames: CHILD_COMPACT_AFTER_FRAMES,
  });
  line('R');
  if (flags.includes('--hold')) {
    // A pending promise does not keep Node alive; a timer does (the holder must stay alive).
    setInterval(() => undefined, 1 << 30);
    await new Promise(() => undefined);
    return;
  }
  for (let n = 0; ; n++) {
    const ids = store.list().map((e) => e.id);
    const roll = rand();
    const some = () => ids[randInt(rand, 0, ids.length)]!;
    let op: CrashOp;
    if (ids.length === 0 || roll < 0.22 || (ids.length < 4 && roll < 0.5)) {
      const r = makeRecord(rand, `L${seed}-${n}`);
      op = { op: 'put', id: r.id, kids: [...r.kids], contentId: r.contentId, body: sha256(r.body) };
      line(`B ${JSON.stringify(op)}`);
      await store.put(r);
    } else if (roll < 0.34) {
      const r = makeRecord(rand, some());
      op = { op: 'put', id: r.id, kids: [...r.kids], contentId: r.contentId, body: sha256(r.body) };
      line(`B ${JSON.stringify(op)}`);
      await store.put(r);
    } else if (roll < 0.78) {
      op = { op: 'use', id: some(), t: 1_700_000_000_000 + n };
      line(`B ${JSON.stringify(op)}`);
      const t = op.t;
      await store.updateUsage(op.id, (u) => ({
        firstPlayMs: u.firstPlayMs ?? t,
        lastPlayMs: t,
        playCount: u.playCount + 1,
      }));
    } else if (roll < 0.82) {
      op = { op: 'release', id: some() };
      line(`B ${JSON.stringify(op)}`);
      await store.updateUsage(op.id, () => ({ state: 'release-pending' }));
    } else if (ids.length > 2) {
      op = { op: 'del', id: some() };
      line(`B ${JSON.stringify(op)}`);
      await store.remove(op.id);
    } else {
      continue;
    }
    line(`A ${JSON.stringify({ n, id: op.id, usage: store.entry(op.id)?.usage ?? null })}`);
  }
}

main().catch((err: unknown) => {
  line(
    `E ${JSON.stringify({
      code: isKeywardenError(err) ? err.code : 'UNCODED',
      message: (err as Error).message,
    })}`,
  );
  process.exit(1);
});
