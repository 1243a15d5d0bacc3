import { toHex } from '../bytes.js';
import type { SampleCipher, SampleCipherFactory } from '../sample-crypto.js';

/** A content key and its key ID (16 bytes each). */
export interface ContentKey {
  readonly kid: Uint8Array;
  readonly key: Uint8Array;
}

/**
 * Which key a track uses in each fragment. Without rotation keys, always the default key.
 * With rotation, fragments are grouped in periods of `rotateEvery`; period p uses key
 * p mod (1 + n) of [default, rotation 1, ..., rotation n], so the first period uses the
 * default KID of 'tenc' and the list repeats when the content outlasts it.
 */
export class KeySchedule {
  private readonly keys: readonly ContentKey[];

  constructor(
    readonly defaultKey: ContentKey,
    rotation: readonly ContentKey[] = [],
    private readonly rotateEvery = 1,
  ) {
    this.keys = [defaultKey, ...rotation];
  }

  /** The key of fragment `index` (0-based) and whether it differs from the track default. */
  keyFor(index: number): { key: ContentKey; rotated: boolean } {
    const period = Math.floor(index / Math.max(1, this.rotateEvery));
    const k = this.keys[period % this.keys.length] ?? this.defaultKey;
    return { key: k, rotated: k !== this.defaultKey };
  }

  /** Every key of the schedule, default first. */
  get all(): readonly ContentKey[] {
    return this.keys;
  }
}

/** One cipher per key (the SampleCipher contract: one context per key, reused). */
export class CipherPool {
  private readonly ciphers = new Map<string, SampleCipher>();

  constructor(private readonly factory: SampleCipherFactory) {}

  get(key: ContentKey): SampleCipher {
    const id = toHex(key.key);
    let c = this.ciphers.get(id);
    if (!c) {
      c = this.factory.create(key.key);
      this.ciphers.set(id, c);
    }
    return c;
  }

  /** Closes every cipher. */
  close(): void {
    for (const c of this.ciphers.values()) c.close();
    this.ciphers.clear();
  }
}
