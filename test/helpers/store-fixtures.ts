import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LicenseRecord } from '../../src/store/index.js';

/** A seeded PRNG (mulberry32): the same seed gives the same sequence on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [lo, hi). */
export const randInt = (rand: () => number, lo: number, hi: number): number =>
  lo + Math.floor(rand() * (hi - lo));

/** `n` bytes from the PRNG. */
export function randBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** A 32-byte storage key (random, or from the PRNG). */
export function storageKey(rand?: () => number): Uint8Array {
  return new Uint8Array(rand ? randBytes(rand, 32) : randomBytes(32));
}

/** A realistic license record: 1-3 KIDs, a 1-2 KiB body, small meta. */
export function makeRecord(rand: () => number, id: string, contentId?: string): LicenseRecord {
  const kids = Array.from({ length: randInt(rand, 1, 4) }, () =>
    randBytes(rand, 16).toString('hex'),
  );
  return {
    id,
    kids,
    contentId: contentId ?? `content-${randInt(rand, 0, 1_000_000)}`,
    meta: {
      kind: 'persistent',
      rootIds: [],
      expiresAtMs: 1_900_000_000_000 + randInt(rand, 0, 1e6),
    },
    body: randBytes(rand, randInt(rand, 1024, 2048)),
  };
}

/** SHA-256 of bytes, hex (to compare bodies in logs). */
export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A fresh temporary directory, and its removal. */
export async function tempDir(
  prefix = 'kw-store-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
