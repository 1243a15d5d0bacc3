import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LicenseStore, STORE_FILES, type LicenseRecord } from '../../../src/store/index.js';
import { makeRecord, prng, storageKey, tempDir } from '../../helpers/store-fixtures.js';

const coded = (code: string): Error => expect.objectContaining({ code }) as Error;

let dir: string;
let cleanup: () => Promise<void>;
let key: Uint8Array;
const open = (extra: Partial<Parameters<typeof LicenseStore.open>[0]> = {}) =>
  LicenseStore.open({ dir, storageKey: key, ...extra });

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  key = storageKey();
});
afterEach(() => cleanup());

describe('LicenseStore basics', () => {
  it('stores, reads back and reopens a license', async () => {
    const rand = prng(1);
    const rec = makeRecord(rand, 'lic-1', 'movie-1');
    const upper = { ...rec, kids: rec.kids.map((k) => k.toUpperCase()) };
    const s = await open();
    await s.put(upper);
    const got = await s.get('lic-1');
    expect(Buffer.from(got.body).equals(Buffer.from(rec.body))).toBe(true);
    expect(got.kids).toEqual(rec.kids); // stored lower case
    expect(got.contentId).toBe('movie-1');
    expect(got.meta).toEqual(rec.meta);
    expect(got.usage).toMatchObject({ state: 'active', playCount: 0 });
    expect(s.entry('lic-1')?.usage).toEqual(got.usage);
    expect(s.problems).toEqual([]);
    await s.close();

    const again = await open();
    expect(again.list().map((e) => e.id)).toEqual(['lic-1']);
    const back = await again.get('lic-1');
    expect(Buffer.from(back.body).equals(Buffer.from(rec.body))).toBe(true);
    expect(back.usage).toEqual(got.usage);
    expect(again.problems).toEqual([]);
    await again.close();
  });

  it('keeps files 0600 and directories 0700, and names files without the license id', async () => {
    const s = await open();
    await s.put(makeRecord(prng(2), 'secret-id'));
    await s.close();
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const licDir = path.join(dir, STORE_FILES.licenses);
    expect((await stat(licDir)).mode & 0o777).toBe(0o700);
    const files = [
      ...(await readdir(dir))
        .filter((n) => n !== STORE_FILES.licenses)
        .map((n) => path.join(dir, n)),
      ...(await readdir(licDir)).map((n) => path.join(licDir, n)),
    ];
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const f of files) expect((await stat(f)).mode & 0o777, f).toBe(0o600);
    expect(files.some((f) => f.includes('secret-id'))).toBe(false);
  });

  it('finds licenses by KID and by content, and follows renewals and removals', async () => {
    const rand = prng(3);
    const s = await open();
    const a = makeRecord(rand, 'a', 'film');
    const b = { ...makeRecord(rand, 'b', 'film'), kids: [a.kids[0]!] };
    const c = makeRecord(rand, 'c', 'series');
    for (const r of [a, b, c]) await s.put(r);
    expect(
      s
        .byKid(a.kids[0]!)
        .map((e) => e.id)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(s.byKid(a.kids[0]!.toUpperCase()).length).toBe(2);
    expect(
      s
        .byContent('film')
        .map((e) => e.id)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(s.byContent('series').map((e) => e.id)).toEqual(['c']);
    expect(s.byKid('00'.repeat(16))).toEqual([]);

    // Renewal with other KIDs and content: the old keys no longer lead to it.
    const renewed = { ...makeRecord(rand, 'a', 'series') };
    await s.put(renewed);
    expect(s.byKid(a.kids[0]!).map((e) => e.id)).toEqual(['b']);
    expect(s.byKid(renewed.kids[0]!).map((e) => e.id)).toEqual(['a']);
    expect(s.byContent('film').map((e) => e.id)).toEqual(['b']);
    expect(
      s
        .byContent('series')
        .map((e) => e.id)
        .sort(),
    ).toEqual(['a', 'c']);

    await s.remove('b');
    expect(s.byKid(a.kids[0]!)).toEqual([]);
    expect(s.byContent('film')).toEqual([]);
    expect(s.size).toBe(2);
    await s.close();
  });

  it('keeps usage across a renewal and raises the generation', async () => {
    const rand = prng(4);
    const s = await open();
    await s.put(makeRecord(rand, 'rental'));
    const g0 = s.entry('rental')!.usage.generation;
    await s.updateUsage('rental', (u) => ({
      firstPlayMs: 1000,
      lastPlayMs: 1000,
      playCount: u.playCount + 1,
    }));
    const newer = makeRecord(rand, 'rental');
    await s.put(newer);
    const got = await s.get('rental');
    expect(Buffer.from(got.body).equals(Buffer.from(newer.body))).toBe(true);
    expect(got.usage).toEqual({
      state: 'active',
      firstPlayMs: 1000,
      lastPlayMs: 1000,
      playCount: 1,
      generation: g0 + 2,
    });
    await s.close();
    const again = await open();
    expect((await again.get('rental')).usage.generation).toBe(g0 + 2);
    await again.close();
  });

  it('updates usage durably, clears fields, and refuses malformed updates', async () => {
    const s = await open();
    await s.put(makeRecord(prng(5), 'x'));
    const g = s.entry('x')!.usage.generation;
    const u1 = await s.updateUsage('x', () => ({ firstPlayMs: 5, lastPlayMs: 6, playCount: 1 }));
    expect(u1).toEqual({
      state: 'active',
      firstPlayMs: 5,
      lastPlayMs: 6,
      playCount: 1,
      generation: g + 1,
    });
    const u2 = await s.updateUsage('x', () => ({
      state: 'release-pending',
      lastPlayMs: undefined,
    }));
    expect(u2).toEqual({
      state: 'release-pending',
      firstPlayMs: 5,
      playCount: 1,
      generation: g + 2,
    });
    await expect(s.updateUsage('x', () => ({ playCount: -1 }))).rejects.toThrow(
      coded('LICENSE_PROCESSING_FAILED'),
    );
    await expect(
      s.updateUsage('x', () => ({ state: 'gone' }) as unknown as { state: 'active' }),
    ).rejects.toThrow(coded('LICENSE_PROCESSING_FAILED'));
    await expect(
      s.updateUsage('x', () => ({ generation: 99 }) as unknown as { playCount: number }),
    ).rejects.toThrow(coded('LICENSE_PROCESSING_FAILED'));
    await expect(s.updateUsage('nope', () => ({}))).rejects.toThrow(coded('LICENSE_NOT_FOUND'));
    expect(s.entry('x')!.usage).toEqual(u2); // refused updates changed nothing
    await s.close();
    const again = await open();
    expect((await again.get('x')).usage).toEqual(u2);
    await again.close();
  });

  it('removes licenses and their files', async () => {
    const s = await open();
    await s.put(makeRecord(prng(6), 'gone'));
    await s.put(makeRecord(prng(7), 'kept'));
    await s.remove('gone');
    await expect(s.get('gone')).rejects.toThrow(coded('LICENSE_NOT_FOUND'));
    await expect(s.remove('gone')).rejects.toThrow(coded('LICENSE_NOT_FOUND'));
    expect(await readdir(path.join(dir, STORE_FILES.licenses))).toHaveLength(1);
    await s.close();
    const again = await open();
    expect(again.list().map((e) => e.id)).toEqual(['kept']);
    expect(again.problems).toEqual([]);
    await again.close();
  });

  it('lands every one of many concurrent writes', async () => {
    const rand = prng(8);
    const s = await open();
    const records = Array.from({ length: 60 }, (_, i) => makeRecord(rand, `c-${i}`));
    await Promise.all(records.map((r) => s.put(r)));
    await s.put(makeRecord(rand, 'counted'));
    await Promise.all(
      Array.from({ length: 40 }, () =>
        s.updateUsage('counted', (u) => ({ playCount: u.playCount + 1 })),
      ),
    );
    expect(s.entry('counted')!.usage.playCount).toBe(40);
    await s.close();
    const again = await open();
    expect(again.size).toBe(61);
    for (const r of records) {
      expect(Buffer.from((await again.get(r.id)).body).equals(Buffer.from(r.body))).toBe(true);
    }
    expect((await again.get('counted')).usage.playCount).toBe(40);
    await again.close();
  });

  it('reads consistently while a write of the same license is under way', async () => {
    const rand = prng(9);
    const s = await open();
    await s.put(makeRecord(rand, 'busy'));
    const writes: Promise<unknown>[] = [];
    const reads: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      writes.push(s.updateUsage('busy', (u) => ({ playCount: u.playCount + 1 })));
      reads.push(s.get('busy'));
    }
    await Promise.all([...writes, ...reads]);
    expect(s.problems).toEqual([]);
    expect((await s.get('busy')).usage.playCount).toBe(30);
    await s.close();
  });

  it('limits the size of license files, on write and on read', async () => {
    const rand = prng(10);
    const s = await open({ maxLicenseBytes: 8 * 1024 });
    const big: LicenseRecord = { ...makeRecord(rand, 'big'), body: Buffer.alloc(9 * 1024) };
    await expect(s.put(big)).rejects.toThrow(coded('STORE_TOO_LARGE'));
    expect(s.entry('big')).toBeUndefined();
    await s.put(makeRecord(rand, 'small')); // the store still works
    await s.put({ ...makeRecord(rand, 'mid'), body: Buffer.alloc(6 * 1024) });
    await expect(
      s.put({ ...makeRecord(rand, 'meta'), meta: { blob: 'x'.repeat(20_000) } }),
    ).rejects.toThrow(coded('STORE_TOO_LARGE'));
    await s.close();

    const tight = await open({ maxLicenseBytes: 4 * 1024 });
    await expect(tight.get('mid')).rejects.toThrow(coded('STORE_TOO_LARGE'));
    expect(tight.problems.map((p) => [p.id, p.error.code])).toEqual([['mid', 'STORE_TOO_LARGE']]);
    expect((await tight.get('small')).id).toBe('small');
    await tight.close();
  });

  it('refuses malformed records with coded errors', async () => {
    const rand = prng(11);
    const s = await open();
    const base = makeRecord(rand, 'r');
    const bad: unknown[] = [
      { ...base, id: '' },
      { ...base, kids: ['abc'] },
      { ...base, kids: 'x' },
      { ...base, contentId: 7 },
      { ...base, meta: [] },
      { ...base, body: 'text' },
      null,
    ];
    for (const r of bad) {
      await expect(s.put(r as LicenseRecord)).rejects.toThrow(coded('LICENSE_PROCESSING_FAILED'));
    }
    expect(s.size).toBe(0);
    await s.close();
  });

  it('refuses a storage key of the wrong size and use after close', async () => {
    await expect(LicenseStore.open({ dir, storageKey: new Uint8Array(16) })).rejects.toThrow(
      coded('INITIALIZATION_FAILED'),
    );
    const s = await open();
    await s.close();
    await s.close();
    await expect(s.get('x')).rejects.toThrow(coded('IO_FAILED'));
    expect(() => s.list()).toThrow(coded('IO_FAILED'));
    await expect(s.put(makeRecord(prng(12), 'x'))).rejects.toThrow(coded('IO_FAILED'));
  });

  it('refuses writes after a write failed midway, until a reopen settles it', async () => {
    const rand = prng(14);
    const s = await open();
    await s.put(makeRecord(rand, 'before'));
    // The license directory vanishes under the store (a file takes its place): the next
    // license file cannot be written after the anchor already announced the change.
    const licDir = path.join(dir, STORE_FILES.licenses);
    const { rename, writeFile, rm } = await import('node:fs/promises');
    await rename(licDir, `${licDir}.aside`);
    await writeFile(licDir, 'not a directory');
    await expect(s.put(makeRecord(rand, 'lost'))).rejects.toThrow(coded('IO_FAILED'));
    await rm(licDir);
    await rename(`${licDir}.aside`, licDir);
    // Poisoned: even a write that would now succeed is refused, reads still work.
    await expect(s.put(makeRecord(rand, 'next'))).rejects.toThrow(coded('IO_FAILED'));
    expect((await s.get('before')).id).toBe('before');
    await s.close();
    const again = await open();
    expect(again.problems).toEqual([]);
    expect(again.list().map((e) => e.id)).toEqual(['before']);
    await again.put(makeRecord(rand, 'next'));
    expect(again.size).toBe(2);
    await again.close();
  });

  it('compacts the journal and keeps every change', async () => {
    const rand = prng(13);
    const s = await open({ compactAfterFrames: 8 });
    for (let i = 0; i < 20; i++) await s.put(makeRecord(rand, `k-${i}`));
    for (let i = 0; i < 60; i++) {
      await s.updateUsage(`k-${i % 20}`, (u) => ({ playCount: u.playCount + 1, lastPlayMs: i }));
    }
    for (let i = 0; i < 5; i++) await s.remove(`k-${i}`);
    await s.close();
    const journal = await stat(path.join(dir, STORE_FILES.journal));
    // 15 entries of ~300 bytes plus at most ~10 frames; without compaction it would be ~85 frames.
    expect(journal.size).toBeLessThan(15 * 400 + 12 * 500);
    const again = await open();
    expect(again.size).toBe(15);
    for (let i = 5; i < 20; i++) expect((await again.get(`k-${i}`)).usage.playCount).toBe(3);
    expect(again.problems).toEqual([]);
    await again.close();
  });
});
