import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LicenseStore, STORE_FILES, type IndexEntry } from '../../../src/store/index.js';
import { deriveStoreKeys, fileTagOf } from '../../../src/store/keys.js';
import { makeRecord, prng, sha256, storageKey, tempDir } from '../../helpers/store-fixtures.js';

/**
 * Every state a crash can leave between the steps of one change (anchor, license file,
 * journal, counter), built from file snapshots taken before and after the change. Each must
 * open without problems and show the state before or after the change, as the order of the
 * steps promises (docs/store.md, "Crash safety").
 */

type Snapshot = Map<string, Buffer>;

let dir: string;
let cleanup: () => Promise<void>;
let key: Uint8Array;
const open = () => LicenseStore.open({ dir, storageKey: key });

async function snapshot(): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) await walk(r);
      else if (e.name !== STORE_FILES.lock) out.set(r, await readFile(path.join(dir, r)));
    }
  };
  await walk('');
  return out;
}

async function restore(s: Snapshot): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, STORE_FILES.licenses), { recursive: true });
  for (const [rel, bytes] of s) await writeFile(path.join(dir, rel), bytes);
}

/** `before` with the given files taken from `after` (or removed, when absent there). */
function mix(before: Snapshot, after: Snapshot, files: string[]): Snapshot {
  const out = new Map(before);
  for (const f of files) {
    const v = after.get(f);
    if (v) out.set(f, v);
    else out.delete(f);
  }
  return out;
}

/** What a reopened store shows: every entry and a digest of every body. */
async function view(s: LicenseStore): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const e of s.list()) {
    const got = await s.get(e.id);
    const entry: IndexEntry = s.entry(e.id)!;
    out[e.id] = { usage: got.usage, entryUsage: entry.usage, body: sha256(got.body) };
  }
  return out;
}

beforeEach(async () => {
  const t = await tempDir();
  dir = path.join(t.dir, 'store');
  cleanup = t.cleanup;
  key = storageKey();
  const s = await open();
  const rand = prng(77);
  for (const id of ['a', 'b']) await s.put(makeRecord(rand, id));
  await s.updateUsage('a', () => ({ playCount: 1, firstPlayMs: 100 }));
  await s.close();
});
afterEach(() => cleanup());

const changes: Record<string, { id: string; run: (s: LicenseStore) => Promise<unknown> }> = {
  'put of a new license': { id: 'n', run: (s) => s.put(makeRecord(prng(1), 'n')) },
  renewal: { id: 'a', run: (s) => s.put(makeRecord(prng(2), 'a')) },
  'usage update': {
    id: 'a',
    run: (s) => s.updateUsage('a', (u) => ({ playCount: u.playCount + 1, lastPlayMs: 200 })),
  },
  remove: { id: 'b', run: (s) => s.remove('b') },
};

describe('crash between the steps of a change', () => {
  for (const [name, change] of Object.entries(changes)) {
    it(`settles every interrupted ${name}`, async () => {
      let s = await open();
      const expectBefore = await view(s);
      await s.close();
      const before = await snapshot();
      s = await open();
      await change.run(s);
      const expectAfter = await view(s);
      await s.close();
      const after = await snapshot();
      expect(expectAfter).not.toEqual(expectBefore);

      const lic = path.join(
        STORE_FILES.licenses,
        `${fileTagOf(deriveStoreKeys(key), change.id).toString('hex')}.kwl`,
      );
      const steps = [STORE_FILES.anchor, lic, STORE_FILES.journal, STORE_FILES.counter];
      const outcomes = [expectBefore, expectBefore, expectAfter, expectAfter, expectAfter];
      for (let done = 0; done <= steps.length; done++) {
        await restore(mix(before, after, steps.slice(0, done)));
        s = await open();
        expect(s.problems, `after ${done} steps`).toEqual([]);
        expect(await view(s), `after ${done} steps`).toEqual(outcomes[done]);
        // The store goes on working, and the result survives another reopen.
        await s.put(makeRecord(prng(done), 'later'));
        await s.close();
        s = await open();
        expect(s.problems).toEqual([]);
        expect(s.entry('later')).toBeDefined();
        await s.close();
      }
    });
  }
});
