import { kwError } from '../errors/index.js';

/**
 * What the fleet client must remember across restarts. Plain JSON, so the agent can keep
 * it in a SealedState (encrypted, device-bound, atomic).
 */
export interface FleetState {
  /** Number of the revocation list applied last (0 = none yet). */
  readonly listNumber: number;
  /** That list's issued_at_ms (0 = none). */
  readonly listIssuedAtMs: number;
  /** That list's next_update_ms (0 = none). */
  readonly listNextUpdateMs: number;
  /** Seen command nonces: [base64 nonce, signed timestamp ms, expires_at_ms]. */
  readonly nonces: readonly (readonly [string, number, number])[];
  /** Commands signed at or before this time are refused (raised when the set overflows). */
  readonly nonceFloorMs: number;
  /**
   * Commands received (and acknowledged to the broker) but not executed yet, as base64 of the
   * signed message: executed at the next start when the agent stopped in between.
   */
  readonly inbox?: readonly string[];
}

/** The empty state of a device that has applied nothing. */
export const EMPTY_FLEET_STATE: FleetState = Object.freeze({
  listNumber: 0,
  listIssuedAtMs: 0,
  listNextUpdateMs: 0,
  nonces: [],
  nonceFloorMs: 0,
});

/** Where the fleet state lives (the agent supplies a sealed one). */
export interface FleetStateStore {
  /** The state, or undefined when nothing was stored yet. */
  get(): Promise<FleetState | undefined>;
  /** Replaces the state durably. */
  set(state: FleetState): Promise<void>;
}

/** An in-memory {@link FleetStateStore} (tests, or a device without storage). */
export class MemoryFleetStateStore implements FleetStateStore {
  private state: FleetState | undefined;

  constructor(initial?: FleetState) {
    this.state = initial;
  }

  get(): Promise<FleetState | undefined> {
    return Promise.resolve(this.state);
  }

  set(state: FleetState): Promise<void> {
    this.state = structuredClone(state);
    return Promise.resolve();
  }
}

/** Checks a stored state read back (it may be from an older version, or damaged). */
export function parseFleetState(value: unknown): FleetState {
  const v = value as Partial<FleetState> | undefined;
  const num = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (
    !v ||
    !num(v.listNumber) ||
    !num(v.listIssuedAtMs) ||
    !num(v.listNextUpdateMs) ||
    !num(v.nonceFloorMs) ||
    !Array.isArray(v.nonces) ||
    !v.nonces.every(
      (n) =>
        Array.isArray(n) && n.length === 3 && typeof n[0] === 'string' && num(n[1]) && num(n[2]),
    ) ||
    (v.inbox !== undefined &&
      (!Array.isArray(v.inbox) ||
        v.inbox.length > MAX_INBOX ||
        !v.inbox.every((m) => typeof m === 'string' && m.length <= MAX_INBOX_ENTRY_CHARS)))
  ) {
    throw kwError('DECODE_FAILED', 'the stored fleet state is malformed');
  }
  return v as FleetState;
}

/** Most commands kept between receipt and execution (more wait for the broker's redelivery). */
export const MAX_INBOX = 64;
/** Largest command kept in the inbox, base64 characters (commands are small). */
export const MAX_INBOX_ENTRY_CHARS = 64 * 1024;

/** Default number of command nonces remembered. */
export const DEFAULT_MAX_NONCES = 1024;

/**
 * The bounded, persistable set of command nonces already accepted. A nonce is kept until
 * its command expires (after that the expiry check refuses a replay by itself). When the
 * set is full, the entry signed earliest is dropped and the floor rises to its timestamp:
 * any command signed at or before the floor is refused, so overflow never reopens a replay.
 */
export class CommandNonceSet {
  private readonly seen = new Map<string, { ts: number; exp: number }>();
  private floorMs: number;

  constructor(
    entries: FleetState['nonces'] = [],
    floorMs = 0,
    private readonly maxEntries = DEFAULT_MAX_NONCES,
  ) {
    this.floorMs = floorMs;
    for (const [k, ts, exp] of entries) this.seen.set(k, { ts, exp });
  }

  /** Entries held. */
  get size(): number {
    return this.seen.size;
  }

  /** Throws NONCE_REPLAYED (seen) or MESSAGE_STALE (at or below the floor); changes nothing. */
  check(nonce: Uint8Array, timestampMs: number): void {
    if (this.seen.has(key(nonce)))
      throw kwError('NONCE_REPLAYED', 'the command nonce was already used');
    if (timestampMs <= this.floorMs)
      throw kwError('MESSAGE_STALE', 'the command is older than the replay set can vouch for', {
        timestampMs,
        floorMs: this.floorMs,
      });
  }

  /** Records an accepted command; forgets expired entries, then the oldest when full. */
  remember(nonce: Uint8Array, timestampMs: number, expiresAtMs: number, nowMs: number): void {
    for (const [k, e] of this.seen) if (e.exp <= nowMs) this.seen.delete(k);
    while (this.seen.size >= this.maxEntries) {
      let oldest: [string, number] | undefined;
      for (const [k, e] of this.seen) if (!oldest || e.ts < oldest[1]) oldest = [k, e.ts];
      if (!oldest) break;
      this.seen.delete(oldest[0]);
      this.floorMs = Math.max(this.floorMs, oldest[1]);
    }
    this.seen.set(key(nonce), { ts: timestampMs, exp: expiresAtMs });
  }

  /** The persistable form. */
  snapshot(): Pick<FleetState, 'nonces' | 'nonceFloorMs'> {
    return {
      nonces: [...this.seen].map(([k, e]) => [k, e.ts, e.exp] as const),
      nonceFloorMs: this.floorMs,
    };
  }
}

function key(nonce: Uint8Array): string {
  return Buffer.from(nonce).toString('base64');
}
