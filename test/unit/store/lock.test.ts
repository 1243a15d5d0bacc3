import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LicenseStore, STORE_FILES } from '../../../src/store/index.js';
import { makeRecord, prng, tempDir } from '../../helpers/store-fixtures.js';

const coded = (code: string): Error => expect.objectContaining({ code }) as Error;
const CHILD = path.resolve(import.meta.dirname, '../../helpers/store-crash-child.ts');
const ROOT = path.resolve(import.meta.dirname, '../../..');

let dir: string;
let cleanup: () => Promise<void>;
let key: Buffer;
const open = () => LicenseStore.open({ dir, storageKey: key });
const lockFile = () => path.join(dir, STORE_FILES.lock);

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => p.on('exit', r));
  return p.pid!;
}

/** Start time of a live process (/proc/PID/stat field 22). */
async function startTime(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kw-store-lock-'));
  key = randomBytes(32);
});
afterEach(() => cleanup());

describe('store lock', () => {
  it('refuses a second open in the same process until the first closes', async () => {
    const a = await open();
    await expect(open()).rejects.toThrow(coded('STORE_LOCKED'));
    await a.put(makeRecord(prng(1), 'x')); // the holder is unaffected
    await a.close();
    const b = await open();
    expect(b.size).toBe(1);
    await b.close();
    expect(await readdir(dir)).not.toContain(STORE_FILES.lock);
  });

  it('refuses a store held by another process, and takes it over once that process is killed', async () => {
    await (await open()).close();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', CHILD, dir, key.toString('hex'), '1', '--hold'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('R\n')) resolve();
      });
      child.on('exit', () => reject(new Error(`child exited: ${out}`)));
    });
    const err = await open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'STORE_LOCKED', details: { pid: child.pid } });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const s = await open(); // stale: its process is gone
    expect(s.problems).toEqual([]);
    await s.close();
  }, 30_000);

  it('takes over a lock left by a dead process or holding garbage', async () => {
    await (await open()).close();
    const pid = await deadPid();
    await writeFile(lockFile(), JSON.stringify({ pid, start: null, token: 'old' }));
    const a = await open();
    await a.close();
    await writeFile(lockFile(), 'not json at all');
    const b = await open();
    await b.close();
  });

  it('takes over a lock whose pid now belongs to a process started at another time', async () => {
    // pid 1 is alive, but the lock says it started at another time: the pid was reused.
    await writeFile(lockFile(), JSON.stringify({ pid: 1, start: 'not-a-time', token: 'old' }));
    const s = await open();
    await s.close();
  });

  it('respects a lock held by a live process', async () => {
    const start = await startTime(process.ppid);
    await writeFile(lockFile(), JSON.stringify({ pid: process.ppid, start, token: 'theirs' }));
    await expect(open()).rejects.toThrow(coded('STORE_LOCKED'));
    // Left as it was: the holder's lock is not removed by the refused open.
    expect(JSON.parse(await readFile(lockFile(), 'utf8'))).toMatchObject({ token: 'theirs' });
  });

  it('lets exactly one of many concurrent opens win', async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => open()));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'STORE_LOCKED' });
    }
    await (won[0] as PromiseFulfilledResult<LicenseStore>).value.close();
  });
});
