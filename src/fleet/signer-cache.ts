import type { KeyObject, X509Certificate } from 'node:crypto';
import { checkValidity, parseCertificate, verifyCertificateChain } from '../crypto/cert-chain.js';

/** What fleet verification needs of a signer chain that led to the operator root. */
export interface VerifiedSigner {
  /** The leaf's public key (P-256), parsed once. */
  readonly key: KeyObject;
  /** The verified path, leaf first, root excluded. */
  readonly path: readonly X509Certificate[];
  /** Subject CN of the leaf ('' when none). */
  readonly leafCommonName: string;
  /** The leaf's subject, for error details. */
  readonly leafSubject: string;
  /** The leaf's basicConstraints cA. */
  readonly leafIsCa: boolean;
}

interface Entry extends VerifiedSigner {
  /** Path and root, with their validity windows (ms), rechecked on every use. */
  readonly certs: readonly X509Certificate[];
  readonly windows: readonly (readonly [number, number])[];
}

/** Counters of a {@link SignerChainCache}. */
export interface SignerCacheStats {
  /** Messages whose chain was found (then only the validity windows were checked). */
  readonly hits: number;
  /** Messages whose chain was verified in full (parse, issuer signatures, CA flags, windows). */
  readonly misses: number;
  readonly entries: number;
}

function commonName(cert: X509Certificate): string {
  const line = cert.subject.split('\n').find((l) => l.startsWith('CN='));
  return line ? line.slice(3) : '';
}

const rootBytes = new WeakMap<X509Certificate, Uint8Array>();

function derOf(root: Uint8Array | X509Certificate): Uint8Array {
  if (root instanceof Uint8Array) return root;
  let der = rootBytes.get(root);
  if (der === undefined) {
    der = new Uint8Array(root.raw);
    rootBytes.set(root, der);
  }
  return der;
}

/**
 * The exact bytes of root and chain, length-prefixed, as a string: two messages share an
 * entry only when they carry byte-identical certificates and are checked against a
 * byte-identical root.
 */
function keyOf(chain: readonly Uint8Array[], root: Uint8Array): string {
  const parts: Buffer[] = [];
  for (const der of [root, ...chain]) {
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(der.length);
    parts.push(len, Buffer.from(der.buffer, der.byteOffset, der.byteLength));
  }
  return Buffer.concat(parts).toString('latin1');
}

/**
 * Verified signer chains of fleet messages (docs/fleet.md, "Chain cache"). Every fleet
 * message carries the same publisher certificate, and parsing and checking X.509 cost
 * several times the signature check over the body, so a chain that verified in full
 * ({@link verifyCertificateChain}) is kept, keyed by its exact DER bytes and those of the
 * root. On the next message with the same bytes only what depends on the time is done
 * again: every certificate's validity window against this message's `nowMs` (CERT_EXPIRED
 * as the full check would say). The caller still verifies the signature over each body
 * with the cached key, so the cache cannot make a forged message pass; chains that fail
 * are not kept. Bounded (least recently used entry dropped first).
 */
export class SignerChainCache {
  private readonly entries = new Map<string, Entry>();
  private hits = 0;
  private misses = 0;

  constructor(private readonly maxEntries = 16) {}

  /**
   * The signer of `chain` (DER, leaf first) under `root`, valid at `nowMs`. Errors as
   * {@link verifyCertificateChain}: CERT_CHAIN_INVALID, CERT_UNTRUSTED_ROOT, CERT_EXPIRED.
   */
  resolve(
    chain: readonly Uint8Array[],
    root: Uint8Array | X509Certificate,
    nowMs: number,
  ): VerifiedSigner {
    const key = keyOf(chain, derOf(root));
    const hit = this.entries.get(key);
    if (hit) {
      this.hits++;
      for (let i = 0; i < hit.windows.length; i++) {
        const [from, to] = hit.windows[i]!;
        if (!(nowMs >= from && nowMs <= to)) checkValidity(hit.certs[i]!, nowMs);
      }
      // Most recently used last.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    this.misses++;
    const rootCert = parseCertificate(root);
    const { leaf, path } = verifyCertificateChain(chain, rootCert, nowMs);
    const certs = [...path, rootCert];
    const entry: Entry = {
      key: leaf.publicKey,
      path,
      leafCommonName: commonName(leaf),
      leafSubject: leaf.subject,
      leafIsCa: leaf.ca,
      certs,
      windows: certs.map((c) => [Date.parse(c.validFrom), Date.parse(c.validTo)] as const),
    };
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, entry);
    return entry;
  }

  /** Hit/miss counters and the number of chains held. */
  stats(): SignerCacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.entries.size };
  }

  /** Forgets every chain (the counters stay). */
  clear(): void {
    this.entries.clear();
  }
}

/**
 * The cache every fleet verifier uses unless given its own: one per process (per worker
 * thread), since entries are keyed by the exact root and chain bytes.
 */
export const sharedSignerCache = new SignerChainCache();
