import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ReplayGuard } from '../../../src/crypto/replay-guard.js';

const coded = (code: string): Error => expect.objectContaining({ code }) as Error;

describe('ReplayGuard', () => {
  it('accepts a nonce once inside the window', () => {
    const g = new ReplayGuard({ windowMs: 1000 });
    const n = randomBytes(16);
    g.checkAndRemember(n, 10_000, 10_000);
    expect(() => g.checkAndRemember(n, 10_000, 10_500)).toThrow(coded('NONCE_REPLAYED'));
  });

  it('refuses messages older than the window and forgets old nonces', () => {
    const g = new ReplayGuard({ windowMs: 1000 });
    g.checkAndRemember(randomBytes(16), 10_000, 10_000);
    expect(g.size).toBe(1);
    expect(() => g.checkAndRemember(randomBytes(16), 8_000, 10_000)).toThrow(
      coded('MESSAGE_STALE'),
    );
    g.checkAndRemember(randomBytes(16), 20_000, 20_000);
    expect(g.size).toBe(1);
  });

  it('stays within its memory bound and never reopens a replay', () => {
    const g = new ReplayGuard({ windowMs: 1_000_000, maxEntries: 100 });
    const nonces = Array.from({ length: 300 }, () => randomBytes(16));
    nonces.forEach((n, i) => g.checkAndRemember(n, 1_000 + i, 2_000));
    expect(g.size).toBe(100);
    // The first nonce was evicted for capacity: its replay is refused as stale, not accepted.
    expect(() => g.checkAndRemember(nonces[0]!, 1_000, 2_000)).toThrow(coded('MESSAGE_STALE'));
    expect(() => g.checkAndRemember(nonces[299]!, 1_299, 2_000)).toThrow(coded('NONCE_REPLAYED'));
  });
});
