import { kwError } from '../../errors/index.js';
import type { HeadendRepository } from './repository.js';

/**
 * The replay window in the database rather than in memory: cluster workers share it, so a
 * request replayed to another worker is still refused, and it survives a restart.
 *
 * It is the asynchronous counterpart of the protocol's NonceRegistry: the services verify
 * a request's signature and chain first (verifyMessage without a replay guard), and only
 * then await {@link checkAndRemember}, so forged requests never reach the database.
 */
export class StoredNonceRegistry {
  constructor(
    private readonly store: HeadendRepository,
    private readonly windowMs: number,
  ) {}

  /**
   * Accepts a verified request's (nonce, timestamp) once: MESSAGE_STALE when the timestamp
   * is older than the window, NONCE_REPLAYED when any worker saw the nonce inside it.
   */
  async checkAndRemember(nonce: Uint8Array, timestampMs: number, nowMs: number): Promise<void> {
    if (timestampMs < nowMs - this.windowMs)
      throw kwError('MESSAGE_STALE', 'the message is older than the replay window', {
        timestampMs,
        nowMs,
      });
    const key = Buffer.from(nonce).toString('base64');
    if (!(await this.store.rememberNonce(key, timestampMs + this.windowMs, nowMs)))
      throw kwError('NONCE_REPLAYED', 'the message nonce was already used');
  }
}
