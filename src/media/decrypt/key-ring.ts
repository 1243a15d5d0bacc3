import { kwError } from '../../errors/index.js';
import { toHex, toUuid } from '../bytes.js';
import type { SampleCipher, SampleCipherFactory } from '../sample-crypto.js';

/** A content key: with its KID, or alone (then it serves every KID of the file). */
export interface ContentKey {
  readonly kid?: Uint8Array;
  readonly key: Uint8Array;
}

/**
 * The keys of one decrypt job, and one cipher per key, created on first use and reused for
 * every fragment (the native cipher keeps its OpenSSL contexts).
 */
export class KeyRing {
  private readonly byKid = new Map<string, Uint8Array>();
  private readonly anyKid?: Uint8Array;
  private readonly ciphers = new Map<string, SampleCipher>();

  constructor(
    keys: readonly ContentKey[],
    private readonly factory: SampleCipherFactory,
  ) {
    const bare = keys.filter((k) => k.kid === undefined);
    if (bare.length > 0 && keys.length > 1) {
      throw kwError('CLI_BAD_KEY', 'a key without a KID is allowed only when it is the only key');
    }
    for (const k of keys) {
      if (k.key.length !== 16) throw kwError('CLI_BAD_KEY', 'a content key is not 16 bytes');
      if (k.kid) this.byKid.set(toHex(k.kid), k.key);
    }
    this.anyKid = bare[0]?.key;
  }

  /** True when a key for `kid` is known. */
  has(kid: Uint8Array): boolean {
    return this.anyKid !== undefined || this.byKid.has(toHex(kid));
  }

  /** Throws MEDIA_MISSING_KEY naming every KID of `kids` without a key. */
  requireAll(kids: Iterable<Uint8Array>): void {
    const missing = new Set<string>();
    for (const kid of kids) if (!this.has(kid)) missing.add(toUuid(kid));
    if (missing.size > 0) {
      const list = [...missing];
      throw kwError('MEDIA_MISSING_KEY', `no key for KID ${list.join(', ')}`, { kids: list });
    }
  }

  /** The cipher for `kid` (created once). */
  cipher(kid: Uint8Array): SampleCipher {
    const hex = toHex(kid);
    const existing = this.ciphers.get(hex);
    if (existing) return existing;
    const key = this.byKid.get(hex) ?? this.anyKid;
    if (!key) this.requireAll([kid]);
    const cipher = this.factory.create(key!);
    this.ciphers.set(hex, cipher);
    return cipher;
  }

  /** Frees every cipher. */
  close(): void {
    for (const c of this.ciphers.values()) c.close();
    this.ciphers.clear();
  }
}
