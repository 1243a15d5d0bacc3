import type { X509Certificate } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { kwError } from '../../errors/index.js';
import { loadX509 } from './x509-issuer.js';

/** anyExtendedKeyUsage (RFC 5280 §4.2.1.12). */
export const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
/** id-kp-clientAuth: a device authenticates to the head-end as a client. */
export const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** The extensions of one certificate that constrain a path. */
interface Constraints {
  readonly subject: string;
  readonly ca: boolean | undefined;
  readonly pathLength: number | undefined;
  /** KeyUsageFlags bits, or undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
  /** Extended key usage OIDs, or undefined when the extension is absent. */
  readonly extKeyUsage: readonly string[] | undefined;
}

function constraintsOf(x509: typeof X509, cert: X509Certificate): Constraints {
  let parsed: X509.X509Certificate;
  try {
    parsed = new x509.X509Certificate(cert.raw);
  } catch (err) {
    throw kwError('CERT_CHAIN_INVALID', `"${cert.subject}" cannot be parsed`, {}, err);
  }
  const bc = parsed.getExtension(x509.BasicConstraintsExtension);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  const eku = parsed.getExtension(x509.ExtendedKeyUsageExtension);
  return {
    subject: cert.subject,
    ca: bc?.ca,
    pathLength: bc?.pathLength,
    keyUsage: ku?.usages,
    extKeyUsage: eku?.usages.map(String),
  };
}

function refuse(c: Constraints, why: string): never {
  throw kwError('CERT_CHAIN_INVALID', `"${c.subject}" ${why}`, { subject: c.subject });
}

/** Purposes allowed by an EKU list (undefined: no restriction). */
function allows(eku: readonly string[] | undefined, purpose: string): boolean {
  return eku === undefined || eku.includes(ANY_EXTENDED_KEY_USAGE) || eku.includes(purpose);
}

/**
 * The RFC 5280 extension rules of a device certificate path that the shared chain check
 * (src/crypto/cert-chain.ts: names, signatures, validity, issuers are CAs) leaves out,
 * each applied where a certificate carries the extension:
 * - every issuer: basicConstraints cA=TRUE, and its pathLenConstraint not below the number
 *   of intermediates under it (§4.2.1.9); keyUsage, when present, with keyCertSign
 *   (§4.2.1.3); extendedKeyUsage, when present, allowing clientAuth (the purposes a CA
 *   carries bound those of what it issues, as TLS stacks apply them);
 * - the device leaf: not a CA; keyUsage, when present, with digitalSignature (it signs its
 *   requests) and keyAgreement (keys are wrapped to it by ECDH); extendedKeyUsage, when
 *   present, allowing clientAuth.
 * `path` is leaf first and ends with the trusted root. Failures are CERT_CHAIN_INVALID.
 */
export async function checkDeviceChainConstraints(path: readonly X509Certificate[]): Promise<void> {
  const x509 = await loadX509();
  const F = x509.KeyUsageFlags;
  const [leaf, ...issuers] = path.map((c) => constraintsOf(x509, c));
  if (!leaf) throw kwError('CERT_CHAIN_INVALID', 'the certificate chain is empty');
  if (leaf.ca === true) refuse(leaf, 'is a CA certificate, not a device certificate');
  if (leaf.keyUsage !== undefined) {
    if ((leaf.keyUsage & F.digitalSignature) === 0) refuse(leaf, 'may not sign (keyUsage)');
    if ((leaf.keyUsage & F.keyAgreement) === 0) refuse(leaf, 'may not agree keys (keyUsage)');
  }
  if (!allows(leaf.extKeyUsage, CLIENT_AUTH))
    refuse(leaf, 'is not for client authentication (extendedKeyUsage)');
  issuers.forEach((issuer, i) => {
    if (issuer.ca !== true) refuse(issuer, 'issues certificates but is not a CA');
    // Intermediates between this issuer and the leaf: the issuers before it in the path.
    if (issuer.pathLength !== undefined && i > issuer.pathLength)
      refuse(issuer, `allows ${issuer.pathLength} intermediate(s) below it, the path has ${i}`);
    if (issuer.keyUsage !== undefined && (issuer.keyUsage & F.keyCertSign) === 0)
      refuse(issuer, 'may not sign certificates (keyUsage)');
    if (!allows(issuer.extKeyUsage, CLIENT_AUTH))
      refuse(issuer, 'may not issue client-authentication certificates (extendedKeyUsage)');
  });
}
