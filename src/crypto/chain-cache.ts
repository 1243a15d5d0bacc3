import type { KeyObject, X509Certificate } from 'node:crypto';
import { checkValidity, parseCertificate, verifyCertificateChain } from './cert-chain.js';

/** What verifiers need of a signer chain that led to the operator root. */
export interface VerifiedSigner {
  /** The leaf's public key (P-256), parsed once. */
  readonly key: KeyObject;
  /** The leaf's public key as SPKI DER (registry comparisons). */
  readonly spki: Buffer;
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

/** Counters of a {@link VerifiedChainCache}. */
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
 * Verified signer chains (docs/fleet.md "Chain cache", docs/headend.md). Every fleet message
 * carries the same publisher certificate and a device sends its own chain with every
 * request, and parsing and checking X.509 cost several times the signature check over the
 * body, so a chain that verified in full ({@link verifyCertificateChain}, plus the caller's
 * own admission rules) is kept, keyed by its exact DER bytes and those of the root. On the
 * next message with the same bytes only what depends on the time is done again: every
 * certificate's validity window against this message's `nowMs` (CERT_EXPIRED as the full
 * check would say). The caller still verifies the signature over each body with the cached
 * key, so the cache cannot make a forged message pass; chains that fail are not kept.
 * Bounded (least recently used entry dropped first). Used by the fleet verifier and the
 * head-end's request verifier.
 */
export class VerifiedChainCache {
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
    return this.hit(key, nowMs) ?? this.admit(key, this.verify(chain, root, nowMs));
  }

  /**
   * As {@link resolve}, with the caller's own rules (`check`, e.g. the head-end's
   * certificate-profile constraints) run on a chain before it is kept; a chain they refuse
   * is not kept, and their error is thrown.
   */
  async resolveWith(
    chain: readonly Uint8Array[],
    root: Uint8Array | X509Certificate,
    nowMs: number,
    check: (path: readonly X509Certificate[], root: X509Certificate) => Promise<void>,
  ): Promise<VerifiedSigner> {
    const key = keyOf(chain, derOf(root));
    const hit = this.hit(key, nowMs);
    if (hit) return hit;
    const entry = this.verify(chain, root, nowMs);
    await check(entry.path, entry.certs[entry.certs.length - 1]!);
    return this.admit(key, entry);
  }

  private hit(key: string, nowMs: number): Entry | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
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

  private verify(
    chain: readonly Uint8Array[],
    root: Uint8Array | X509Certificate,
    nowMs: number,
  ): Entry {
    this.misses++;
    const rootCert = parseCertificate(root);
    const { leaf, path } = verifyCertificateChain(chain, rootCert, nowMs);
    const certs = [...path, rootCert];
    return {
      key: leaf.publicKey,
      spki: leaf.publicKey.export({ format: 'der', type: 'spki' }),
      path,
      leafCommonName: commonName(leaf),
      leafSubject: leaf.subject,
      leafIsCa: leaf.ca,
      certs,
      windows: certs.map((c) => [Date.parse(c.validFrom), Date.parse(c.validTo)] as const),
    };
  }

  private admit(key: string, entry: Entry): Entry {
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
