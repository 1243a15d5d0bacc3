import { isKeywardenError, kwError } from '../errors/index.js';

/** How a request is retried. */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 4). */
  readonly attempts: number;
  /** Delay before the second attempt, ms (default 250). */
  readonly baseDelayMs: number;
  /** Cap of one delay, ms (default 10 s). */
  readonly maxDelayMs: number;
}

/** Defaults of {@link RetryPolicy}. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 250, maxDelayMs: 10_000 };

/** Errors worth another attempt: the network or the server failed, not the server said no. */
const TRANSIENT = new Set(['TRANSPORT_FAILED', 'HEADEND_TIMEOUT', 'HEADEND_INTERNAL']);

/** True when `err` may go away by itself (network down, 5xx, a timeout). */
export function isTransient(err: unknown): boolean {
  return isKeywardenError(err) && TRANSIENT.has(err.code);
}

/**
 * The delay before attempt `attempt + 1`: exponential from `baseDelayMs`, capped, with "full
 * jitter" (a uniform draw in [0, cap]) so that a fleet recovering from an outage does not
 * retry in lockstep (AWS Architecture Blog, "Exponential Backoff And Jitter").
 */
export function backoffDelay(attempt: number, p: RetryPolicy, random = Math.random): number {
  const cap = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * cap);
}

/** Waits `ms`, or rejects with ACQUIRE_ABORTED as soon as `signal` aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(aborted(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The coded error for a cancelled operation, keeping the abort reason as its cause. */
export function aborted(signal: AbortSignal): Error {
  return kwError('ACQUIRE_ABORTED', 'the request was cancelled', {}, signal.reason);
}

/**
 * Runs `op` until it succeeds, fails with a non-transient error, or `policy.attempts` ran
 * out (the last error is rethrown). `onRetry` hears each failed attempt before the wait.
 */
export async function withRetry<T>(
  op: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  signal?: AbortSignal,
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw aborted(signal);
    try {
      return await op(attempt);
    } catch (err) {
      if (signal?.aborted) throw aborted(signal);
      if (!isTransient(err) || attempt >= policy.attempts) throw err;
      const delay = backoffDelay(attempt, policy);
      onRetry?.(err, attempt, delay);
      await abortableSleep(delay, signal);
    }
  }
}
