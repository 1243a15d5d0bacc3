import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isKeywardenError, type KeywardenError } from '../../../src/errors/index.js';
import { LicenseStore, STORE_FILES } from '../../../src/store/index.js';
import {
  makeRecord,
  prng,
  randBytes,
  randInt,
  storageKey,
  tempDir,
} from '../../helpers/store-fixtures.js';

/**
 * Random damage to the store's files, from a seeded PRNG: byte flips, overwritten runs,
 * truncations, extensions, random replacements, and frames spliced from another journal.
 * Whatever the damage, opening and using the store gives results or coded errors, never
 * an uncoded exception; and damage to one license file never reaches the others.
 */

const ITERATIONS = 400;
const OPEN_CODES = new Set(['STORE_TAMPERED', 'STORE_FOREIGN_DEVICE', 'STORE_CORRUPT']);
const USE_CODES = new Set([
  'STORE_TAMPERED',
  'STORE_FOREIGN_DEVICE',
  'STORE_ROLLBACK',
  'STORE_TOO_LARGE',
  'LICENSE_NOT_FOUND',
]);

type Files = Map<string, Buffer>;
let root: string;
let cleanup: () => Promise<void>;
let key: Uint8Array;
let pristine: Files;
let previous: Files; // the same store one change earlier (for splicing old frames and files)
const ids = ['a', 'b', 'c', 'd', 'e', 'f'];

async function readAll(dir: string): Promise<Files> {
  const out: Files = new Map();
  for (const rel of [
    ...(await readdir(dir)),
    ...(await readdir(path.join(dir, STORE_FILES.licenses))).map((n) =>
      path.join(STORE_FILES.licenses, n),
    ),
  ]) {
    if (rel === STORE_FILES.licenses || rel === STORE_FILES.lock) continue;
    out.set(rel, await readFile(path.join(dir, rel)));
  }
  return out;
}

async function writeAll(dir: string, files: Files): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, STORE_FILES.licenses), { recursive: true });
  for (const [rel, bytes] of files) await writeFile(path.join(dir, rel), bytes);
}

function mutate(rand: () => number, bytes: Buffer, donor: Buffer | undefined): Buffer {
  const b = Buffer.from(bytes);
  switch (randInt(rand, 0, 7)) {
    case 0: // a few bit flips
      for (let i = randInt(rand, 1, 4); i > 0 && b.length; i--) {
        const at = randInt(rand, 0, b.length);
        b[at] = b[at]! ^ (1 << randInt(rand, 0, 8));
      }
      return b;
    case 1: // an overwritten run
      if (b.length) randBytes(rand, randInt(rand, 1, 64)).copy(b, randInt(rand, 0, b.length));
      return b;
    case 2: // truncation
      return b.subarray(0, randInt(rand, 0, b.length + 1));
    case 3: // extension
      return Buffer.concat([b, randBytes(rand, randInt(rand, 1, 300))]);
    case 4: // replaced entirely
      return randBytes(rand, randInt(rand, 0, 600));
    case 5: // a length prefix or size field pushed to extremes
      if (b.length >= 4)
        b.writeUInt32BE(
          rand() < 0.5 ? 0xffffffff : randInt(rand, 0, 100),
          randInt(rand, 0, b.length - 3),
        );
      return b;
    default: // spliced: the tail of the same file one change earlier
      if (!donor || !donor.length) return b;
      {
        const cut = randInt(rand, 0, Math.min(b.length, donor.length));
        return Buffer.concat([b.subarray(0, cut), donor.subarray(cut)]);
      }
  }
}

function expectCoded(err: unknown, allowed: Set<string>, what: string): KeywardenError {
  if (!isKeywardenError(err) || !allowed.has(err.code)) {
    throw new Error(`${what}: not an allowed coded error: ${(err as Error)?.stack ?? String(err)}`);
  }
  return err;
}

beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir('kw-store-fuzz-'));
  key = storageKey(prng(5));
  const dir = path.join(root, 'seed');
  const rand = prng(6);
  const s = await LicenseStore.open({ dir, storageKey: key });
  for (const id of ids) await s.put(makeRecord(rand, id));
  for (let i = 0; i < 10; i++)
    await s.updateUsage(ids[i % ids.length]!, (u) => ({ playCount: u.playCount + 1 }));
  await s.close();
  previous = await readAll(dir);
  const again = await LicenseStore.open({ dir, storageKey: key });
  await again.updateUsage('c', (u) => ({ playCount: u.playCount + 1, lastPlayMs: 5 }));
  await again.put(makeRecord(rand, 'g'));
  await again.close();
  pristine = await readAll(dir);
});
afterAll(() => cleanup());

describe('license store fuzzing', () => {
  it(`survives ${ITERATIONS} random damages with coded errors only`, async () => {
    const rand = prng(20240601);
    const names = [...pristine.keys()];
    const outcomes = { opened: 0, refusedAtOpen: 0, readFailures: 0, reads: 0 };
    for (let it = 0; it < ITERATIONS; it++) {
      const files = new Map(pristine);
      const targets = new Set<string>();
      // Mostly one file; sometimes several at once.
      for (let n = rand() < 0.8 ? 1 : randInt(rand, 2, 4); n > 0; n--) {
        const name = rand() < 0.35 ? STORE_FILES.journal : names[randInt(rand, 0, names.length)]!;
        targets.add(name);
        files.set(name, mutate(rand, files.get(name)!, previous.get(name)));
      }
      const dir = path.join(root, `it-${it}`);
      await writeAll(dir, files);
      let s: LicenseStore;
      try {
        s = await LicenseStore.open({ dir, storageKey: key });
      } catch (err) {
        expectCoded(err, OPEN_CODES, `iteration ${it} open (${[...targets].join(', ')})`);
        // Only the header is worth refusing the whole store for.
        expect(targets.has(STORE_FILES.header), `iteration ${it}`).toBe(true);
        outcomes.refusedAtOpen++;
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      outcomes.opened++;
      try {
        const onlyLicenses = [...targets].every((t) => t.startsWith(STORE_FILES.licenses));
        for (const e of s.list()) {
          outcomes.reads++;
          try {
            await s.get(e.id);
          } catch (err) {
            outcomes.readFailures++;
            expectCoded(err, USE_CODES, `iteration ${it} get ${e.id}`);
            // Damage confined to license files hits only those licenses.
            if (onlyLicenses) {
              const p = s.problems.find((x) => x.id === e.id);
              expect(p && targets.has(path.relative(dir, p.file)), `iteration ${it} ${e.id}`).toBe(
                true,
              );
            }
          }
        }
        if (onlyLicenses) {
          // Nothing but the damaged files was lost.
          const intact = ids
            .concat('g')
            .filter(
              (id) =>
                ![...targets].some((t) =>
                  s.problems.some((p) => p.id === id && p.file.endsWith(t)),
                ),
            );
          for (const id of intact) expect(s.entry(id), `iteration ${it} ${id}`).toBeDefined();
        }
        // The store still takes changes.
        await s.put(makeRecord(rand, `new-${it}`));
        const victim = s.list().find((e) => !e.refused)?.id;
        if (victim) {
          await s
            .updateUsage(victim, (u) => ({ playCount: u.playCount + 1 }))
            .catch((err: unknown) => expectCoded(err, USE_CODES, `iteration ${it} update`));
        }
        await s.remove(`new-${it}`);
      } finally {
        await s.close();
      }
      // A second open of the repaired store is clean of index trouble.
      const again = await LicenseStore.open({ dir, storageKey: key });
      expect(
        again.problems.filter((p) => p.error.code === 'STORE_CORRUPT'),
        `iteration ${it} reopen`,
      ).toEqual([]);
      await again.close();
      await rm(dir, { recursive: true, force: true });
    }
    console.log(`store fuzz: ${JSON.stringify(outcomes)}`);
    // The damage reached every path: opens refused, opens repaired, reads refused.
    expect(outcomes.refusedAtOpen).toBeGreaterThan(0);
    expect(outcomes.opened).toBeGreaterThan(ITERATIONS / 2);
    expect(outcomes.readFailures).toBeGreaterThan(20);
  }, 120_000);
});
