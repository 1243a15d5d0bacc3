import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FileRollbackCounter,
  LicenseStore,
  type RollbackCounter,
} from '../../../src/store/index.js';
import { makeRecord, prng, storageKey, tempDir } from '../../helpers/store-fixtures.js';

const coded = (code: string): Error => expect.objectContaining({ code }) as Error;

let dir: string;
let cleanup: () => Promise<void>;
let key: Uint8Array;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kw-store-counter-'));
  key = storageKey();
});
afterEach(() => cleanup());

/** A counter that lives in memory: stands in for a TPM NV counter nobody can lower. */
class MemoryCounter implements RollbackCounter {
  readonly kind = 'memory';
  value = 0;
  closed = false;
  async read(): Promise<number> {
    return this.value;
  }
  async advance(v: number): Promise<void> {
    if (v < this.value) throw new Error('lowered');
    this.value = v;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('FileRollbackCounter', () => {
  const file = () => path.join(dir, 'counter.kwc');

  it('starts at 0, advances, persists, and never goes back', async () => {
    const c = new FileRollbackCounter({ file: file(), storageKey: key });
    expect(await c.read()).toBe(0);
    await c.advance(5);
    await c.advance(5);
    await c.advance(9);
    await expect(c.advance(8)).rejects.toThrow(coded('STORE_ROLLBACK'));
    await c.close();
    const again = new FileRollbackCounter({ file: file(), storageKey: key });
    expect(await again.read()).toBe(9);
    await again.close();
  });

  it('falls back to the previous value when the newest slot is torn', async () => {
    const c = new FileRollbackCounter({ file: file(), storageKey: key });
    await c.advance(1); // slot 0
    await c.advance(2); // slot 1
    await c.close();
    const bytes = await readFile(file());
    bytes.fill(0xaa, 512 + 10, 512 + 30); // slot 1 torn
    await writeFile(file(), bytes);
    const again = new FileRollbackCounter({ file: file(), storageKey: key });
    expect(await again.read()).toBe(1);
    await again.advance(3); // rewrites the torn slot
    await again.close();
    const third = new FileRollbackCounter({ file: file(), storageKey: key });
    expect(await third.read()).toBe(3);
    await third.close();
  });

  it('refuses an edited counter and one made under another key', async () => {
    const c = new FileRollbackCounter({ file: file(), storageKey: key });
    await c.advance(7);
    await c.close();
    const other = new FileRollbackCounter({ file: file(), storageKey: storageKey() });
    await expect(other.read()).rejects.toThrow(coded('STORE_TAMPERED'));
    await other.close();
    const bytes = await readFile(file());
    bytes[27] = bytes[27]! ^ 1; // inside the value of slot 0
    await writeFile(file(), bytes);
    const edited = new FileRollbackCounter({ file: file(), storageKey: key });
    await expect(edited.read()).rejects.toThrow(coded('STORE_TAMPERED'));
    await edited.close();
  });
});

describe('LicenseStore with a rollback counter', () => {
  it('advances the counter with every change and leaves a caller-owned counter open', async () => {
    const counter = new MemoryCounter();
    const s = await LicenseStore.open({ dir, storageKey: key, counter });
    const v0 = counter.value;
    expect(v0).toBeGreaterThan(0);
    await s.put(makeRecord(prng(1), 'a'));
    await s.updateUsage('a', () => ({ playCount: 1 }));
    await s.remove('a');
    expect(counter.value).toBe(v0 + 3);
    await s.close();
    expect(counter.closed).toBe(false);
  });

  it('refuses a restored store directory, all files included, when the counter is out of reach', async () => {
    const counter = new MemoryCounter();
    let s = await LicenseStore.open({ dir, storageKey: key, counter });
    const rand = prng(2);
    for (const id of ['a', 'b', 'c']) await s.put(makeRecord(rand, id));
    await s.close();
    const backup = `${dir}-backup`;
    await cp(dir, backup, { recursive: true });
    s = await LicenseStore.open({ dir, storageKey: key, counter });
    await s.updateUsage('b', () => ({ playCount: 1, firstPlayMs: 1 }));
    await s.close();
    await rm(dir, { recursive: true });
    await cp(backup, dir, { recursive: true });
    await rm(backup, { recursive: true });

    s = await LicenseStore.open({ dir, storageKey: key, counter });
    const codes = s.problems.map((p) => p.error.code);
    expect(codes).toContain('STORE_ROLLBACK');
    // Journal and anchor are both older than the counter: nothing can be vouched for.
    for (const id of ['a', 'b', 'c']) {
      expect(s.entry(id)?.refused).toBe('rollback');
      await expect(s.get(id)).rejects.toThrow(coded('STORE_ROLLBACK'));
    }
    // The store itself keeps working: removals and fresh licenses.
    await s.remove('a');
    await s.put(makeRecord(rand, 'd'));
    expect((await s.get('d')).id).toBe('d');
    await s.close();
  });

  it('reports a counter file that does not verify, then repairs it', async () => {
    const counterFile = path.join(dir, 'outside.kwc');
    const opts = { dir: path.join(dir, 'store'), storageKey: key, counterFile };
    let s = await LicenseStore.open(opts);
    await s.put(makeRecord(prng(3), 'a'));
    await s.close();
    await writeFile(counterFile, Buffer.alloc(1024, 1));
    s = await LicenseStore.open(opts);
    expect(s.problems).toEqual([
      expect.objectContaining({
        file: counterFile,
        error: expect.objectContaining({ code: 'STORE_TAMPERED' }),
      }),
    ]);
    expect((await s.get('a')).id).toBe('a');
    await s.close();
    s = await LicenseStore.open(opts);
    expect(s.problems).toEqual([]);
    await s.close();
  });
});
