import { X509Certificate } from 'node:crypto';
import { kwError } from '../errors/index.js';
import { isP256Key } from './ecdsa.js';

/** Longest chain accepted (leaf + intermediates), a bound against hostile input. */
export const MAX_CHAIN_LENGTH = 5;

/** A verified chain: the leaf and the path up to (excluding) the trusted root. */
export interface VerifiedChain {
  /** The end-entity certificate (the signer). */
  readonly leaf: X509Certificate;
  /** Leaf first, then intermediates; the trusted root is not included. */
  readonly path: readonly X509Certificate[];
}

/** Parses one DER certificate; a malformed one is CERT_CHAIN_INVALID. */
export function parseCertificate(der: Uint8Array | X509Certificate): X509Certificate {
  if (der instanceof X509Certificate) return der;
  try {
    return new X509Certificate(Buffer.from(der));
  } catch (err) {
    throw kwError(
      'CERT_CHAIN_INVALID',
      'a certificate in the chain is not valid DER X.509',
      {},
      err,
    );
  }
}

/** Parses a "validFrom"/"validTo" string from node:crypto (OpenSSL's "Mmm dd hh:mm:ss yyyy GMT"). */
function certTime(text: string): number {
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw kwError('CERT_CHAIN_INVALID', `unreadable certificate time "${text}"`);
  return ms;
}

/** RFC 5280 §6.1.3 (a)(2): the certificate's validity period includes the current time. */
export function checkValidity(cert: X509Certificate, nowMs: number): void {
  const from = certTime(cert.validFrom);
  const to = certTime(cert.validTo);
  if (nowMs < from || nowMs > to) {
    throw kwError('CERT_EXPIRED', `certificate "${cert.subject}" is not valid now`, {
      subject: cert.subject,
      validFrom: cert.validFrom,
      validTo: cert.validTo,
      now: new Date(nowMs).toISOString(),
    });
  }
}

/**
 * RFC 5280 §6.1.3 (a)(1), (a)(4): `issuer` names and signed `cert`. checkIssued() compares
 * the issuer/subject names (and key identifiers when present); verify() checks the signature.
 */
function isIssuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    // OpenSSL throws on unsupported algorithms: such a link is simply not a valid one.
    return false;
  }
}

/**
 * RFC 5280 §6.1.4 (k): a certificate that issues another must be a CA (basicConstraints
 * cA=TRUE). Node exposes basicConstraints as `ca`; keyUsage keyCertSign is checked by
 * OpenSSL's checkIssued() when the extension is present (RFC 5280 §4.2.1.3).
 */
function checkIsCa(cert: X509Certificate): void {
  if (!cert.ca) {
    throw kwError('CERT_CHAIN_INVALID', `"${cert.subject}" issues certificates but is not a CA`, {
      subject: cert.subject,
    });
  }
}

/** Drops a trailing copy of the trusted root: senders may include it. */
function withoutRoot(chain: X509Certificate[], root: X509Certificate): X509Certificate[] {
  const last = chain[chain.length - 1];
  return last && last.fingerprint256 === root.fingerprint256 ? chain.slice(0, -1) : chain;
}

/**
 * Validates a certificate path (RFC 5280 §6.1, simplified to what the operator PKI uses):
 * leaf first, each certificate issued and signed by the next, the last one by the trusted
 * root; every certificate (root included) inside its validity window; every issuer a CA;
 * the leaf key on P-256. Policy, name constraints and revocation are out of scope here
 * (the head-end keeps its own revocation state).
 */
export function verifyCertificateChain(
  chainDer: readonly (Uint8Array | X509Certificate)[],
  trustedRoot: X509Certificate,
  nowMs: number,
): VerifiedChain {
  if (chainDer.length === 0) throw kwError('CERT_CHAIN_INVALID', 'the certificate chain is empty');
  if (chainDer.length > MAX_CHAIN_LENGTH + 1) {
    throw kwError('CERT_CHAIN_INVALID', `the chain has more than ${MAX_CHAIN_LENGTH} certificates`);
  }
  const path = withoutRoot(chainDer.map(parseCertificate), trustedRoot);
  const leaf = path[0];
  if (!leaf) throw kwError('CERT_CHAIN_INVALID', 'the chain holds only the root');
  for (let i = 0; i < path.length; i++) {
    const cert = path[i]!;
    const issuer = path[i + 1];
    if (issuer === undefined) {
      if (!isIssuedBy(cert, trustedRoot)) {
        throw kwError(
          'CERT_UNTRUSTED_ROOT',
          `"${cert.subject}" is not issued by the operator root`,
          {
            issuer: cert.issuer,
          },
        );
      }
    } else {
      if (!isIssuedBy(cert, issuer)) {
        throw kwError(
          'CERT_CHAIN_INVALID',
          `"${cert.subject}" is not signed by the next certificate`,
          {
            subject: cert.subject,
            issuer: cert.issuer,
          },
        );
      }
      checkIsCa(issuer);
    }
  }
  checkIsCa(trustedRoot);
  for (const cert of [...path, trustedRoot]) checkValidity(cert, nowMs);
  if (!isP256Key(leaf.publicKey))
    throw kwError('CERT_CHAIN_INVALID', 'the signer key is not P-256');
  return { leaf, path };
}
