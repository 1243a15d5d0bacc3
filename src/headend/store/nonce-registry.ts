import type { NonceRegistry } from '../../crypto/replay-guard.js';
import { kwError } from '../../errors/index.js';
import type { HeadendRepository } from './repository.js';

/**
 * The replay window in the database rather than in memory: cluster workers share it, so a
 * request replayed to another worker is still refused, and it survives a restart.
 */
export class StoredNonceRegistry implements NonceRegistry {
  constructor(
    private readonly store: HeadendRepository,
    private readonly windowMs: number,
  ) {}

  checkAndRemember(nonce: Uint8Array, timestampMs: number, nowMs: number): void {
    if (timestampMs < nowMs - this.windowMs)
      throw kwError('MESSAGE_STALE', 'the message is older than the replay window', {
        timestampMs,
        nowMs,
      });
    const key = Buffer.from(nonce).toString('base64');
    if (!this.store.rememberNonce(key, timestampMs + this.windowMs, nowMs))
      throw kwError('NONCE_REPLAYED', 'the message nonce was already used');
  }
}
