import { createHash, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { kwError } from '../../errors/index.js';

type X509Module = typeof X509;
type WebKey = webcrypto.CryptoKey;
// @peculiar/x509 is typed against the DOM's Crypto/CryptoKey, which this Node-only build
// does not declare; Node's webcrypto objects are those at run time.
type DomCrypto = Parameters<X509Module['cryptoProvider']['set']>[0];
type DomKey = X509.X509CertificateCreateWithKeyParams['signingKey'];
const asDomKey = (k: WebKey): DomKey => k as unknown as DomKey;

/** ECDSA P-256 with SHA-256: the only algorithm the operator PKI issues with. */
const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

let loaded: Promise<X509Module> | undefined;

/**
 * Loads @peculiar/x509 (an optional dependency: the device install leaves it out) and points
 * it at Node's WebCrypto. A missing module is a coded error.
 */
export function loadX509(): Promise<X509Module> {
  // tsyringe, which @peculiar/x509 uses inside, needs a Reflect metadata polyfill first.
  loaded ??= import('reflect-metadata')
    .then(() => import('@peculiar/x509'))
    .then(
      (mod) => {
        mod.cryptoProvider.set(webcrypto as unknown as DomCrypto);
        return mod;
      },
      (err: unknown) => {
        loaded = undefined;
        throw kwError(
          'HEADEND_DEPENDENCY_MISSING',
          `@peculiar/x509 cannot be loaded: ${(err as Error).message}`,
          {},
          err,
        );
      },
    );
  return loaded;
}

/** A signing identity in both forms: WebCrypto for X.509 issuing, KeyObject for envelopes. */
export interface IssuerKey {
  readonly webKey: WebKey;
  readonly keyObject: KeyObject;
}

/** What kind of certificate to issue. */
export type CertProfile = 'root' | 'intermediate-ca' | 'signer' | 'device';

/** One certificate to issue. */
export interface IssueParams {
  readonly subject: string;
  readonly publicKey: WebKey;
  readonly profile: CertProfile;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The issuer's certificate (absent for the self-signed root). */
  readonly issuerCert?: Uint8Array;
  readonly issuerKey: IssuerKey;
}

/** Generates an exportable P-256 key pair. */
export async function generateIssuerKey(): Promise<IssuerKey & { pkcs8: Buffer }> {
  const pair = (await webcrypto.subtle.generateKey(EC_ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
  return { webKey: pair.privateKey, keyObject: KeyObject.from(pair.privateKey), pkcs8 };
}

/** Imports a PKCS#8 P-256 private key in both forms. */
export async function importIssuerKey(pkcs8: Uint8Array): Promise<IssuerKey> {
  const webKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_ALG, false, ['sign']);
  return { webKey, keyObject: KeyObject.from(webKey) };
}

/** Imports a P-256 SubjectPublicKeyInfo as a WebCrypto verification key. */
export async function importSpki(spki: Uint8Array): Promise<WebKey> {
  return webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'verify',
  ]);
}

/** The public half of a WebCrypto private key (via its JWK, which carries x and y). */
export async function publicOf(privateKey: WebKey): Promise<WebKey> {
  const jwk = await webcrypto.subtle.exportKey('jwk', privateKey);
  delete jwk.d;
  jwk.key_ops = ['verify'];
  return webcrypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'verify',
  ]);
}

/** RFC 5280 §4.1.2.2: positive, at most 20 octets; 16 random bytes with the top bit clear. */
function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

async function extensionsFor(x509: X509Module, p: IssueParams): Promise<X509.Extension[]> {
  const F = x509.KeyUsageFlags;
  const ski = await x509.SubjectKeyIdentifierExtension.create(asDomKey(p.publicKey));
  const exts: X509.Extension[] = [ski];
  if (p.profile === 'root' || p.profile === 'intermediate-ca') {
    exts.push(new x509.BasicConstraintsExtension(true, p.profile === 'root' ? 1 : 0, true));
    exts.push(new x509.KeyUsagesExtension(F.keyCertSign | F.cRLSign | F.digitalSignature, true));
  } else {
    exts.push(new x509.BasicConstraintsExtension(false, undefined, true));
    exts.push(new x509.KeyUsagesExtension(F.digitalSignature | F.keyAgreement, true));
  }
  if (p.issuerCert) {
    const issuer = new x509.X509Certificate(p.issuerCert);
    exts.push(await x509.AuthorityKeyIdentifierExtension.create(issuer, false));
  }
  return exts;
}

/** Issues (or self-signs) one certificate; returns its DER. */
export async function issueCertificate(p: IssueParams): Promise<Buffer> {
  const x509 = await loadX509();
  const issuerName = p.issuerCert ? new x509.X509Certificate(p.issuerCert).subject : p.subject;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: p.subject,
    issuer: issuerName,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    signingAlgorithm: EC_ALG,
    publicKey: asDomKey(p.publicKey),
    signingKey: asDomKey(p.issuerKey.webKey),
    extensions: await extensionsFor(x509, p),
  });
  return Buffer.from(cert.rawData);
}

/** Hex SHA-256 of `data`, for ids derived from keys. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
