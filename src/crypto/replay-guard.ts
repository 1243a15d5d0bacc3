import { kwError } from '../errors/index.js';

/**
 * Remembers the nonces of accepted messages so that none is accepted twice. The head-end
 * may back it with shared storage (cluster workers); the default is in memory.
 */
export interface NonceRegistry {
  /**
   * Accepts a (nonce, timestamp) pair once: throws NONCE_REPLAYED when the nonce was seen
   * inside the window, MESSAGE_STALE when the timestamp is older than the guard can vouch
   * for. Call it only after the signature verified, so forgeries cannot fill the set.
   */
  checkAndRemember(nonce: Uint8Array, timestampMs: number, nowMs: number): void;
}

/** Options of a {@link ReplayGuard}. */
export interface ReplayGuardOptions {
  /** How long a nonce is remembered, ms. Must cover twice the accepted clock skew. */
  readonly windowMs: number;
  /** Most nonces held at once (memory bound); default 100,000 (~10 MB). */
  readonly maxEntries?: number;
}

/**
 * An in-memory replay window: a bounded set of seen nonces, evicted by age. A message is
 * fresh only if its timestamp is inside the window *and* its nonce is unseen, so nonces
 * older than the window can be forgotten safely. When the set is full the oldest entry is
 * evicted and the acceptance floor rises to its timestamp: anything not newer than an
 * evicted entry is refused as stale, so capacity pressure never reopens a replay.
 */
export class ReplayGuard implements NonceRegistry {
  private readonly seen = new Map<string, number>();
  private readonly windowMs: number;
  private readonly maxEntries: number;
  private floorMs = Number.NEGATIVE_INFINITY;

  constructor(opts: ReplayGuardOptions) {
    this.windowMs = opts.windowMs;
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  /** Number of nonces currently remembered. */
  get size(): number {
    return this.seen.size;
  }

  checkAndRemember(nonce: Uint8Array, timestampMs: number, nowMs: number): void {
    this.evictExpired(nowMs);
    if (timestampMs < nowMs - this.windowMs || timestampMs <= this.floorMs) {
      throw kwError('MESSAGE_STALE', 'the message is older than the replay window', {
        timestampMs,
        nowMs,
      });
    }
    const key = Buffer.from(nonce).toString('base64');
    if (this.seen.has(key)) throw kwError('NONCE_REPLAYED', 'the message nonce was already used');
    if (this.seen.size >= this.maxEntries) this.evictOldest();
    this.seen.set(key, timestampMs);
  }

  /** Drops entries older than the window. Insertion order ≈ arrival order, so stop early. */
  private evictExpired(nowMs: number): void {
    const limit = nowMs - this.windowMs;
    for (const [key, ts] of this.seen) {
      if (ts >= limit) break;
      this.seen.delete(key);
    }
  }

  private evictOldest(): void {
    const first = this.seen.entries().next();
    if (first.done) return;
    const [key, ts] = first.value;
    this.seen.delete(key);
    this.floorMs = Math.max(this.floorMs, ts);
  }
}
