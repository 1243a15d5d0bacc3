/**
 * A throwaway operator PKI for protocol tests. Tests (not the device install) may mint
 * certificates with @peculiar/x509.
 */
import 'reflect-metadata';
import { KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

/** A minted certificate and its key. */
export interface Issued {
  readonly der: Uint8Array;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly name: string;
  readonly cryptoKeys: webcrypto.CryptoKeyPair;
}

/** Options for {@link issue}. */
export interface IssueOptions {
  readonly ca?: boolean;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly keyUsage?: number;
}

let serial = 1;

/** Issues a certificate for `cn`, signed by `issuer` (self-signed when absent). */
export async function issue(cn: string, issuer?: Issued, opts: IssueOptions = {}): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const name = `CN=${cn}`;
  const ca = opts.ca ?? false;
  const usage =
    opts.keyUsage ??
    (ca
      ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
      : x509.KeyUsageFlags.digitalSignature);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(4, '0'),
    subject: name,
    issuer: issuer?.name ?? name,
    notBefore: opts.notBefore ?? new Date(Date.now() - DAY),
    notAfter: opts.notAfter ?? new Date(Date.now() + 365 * DAY),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: issuer?.cryptoKeys.privateKey ?? keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(ca, undefined, true),
      new x509.KeyUsagesExtension(usage, true),
    ],
  });
  return {
    der: new Uint8Array(cert.rawData),
    privateKey: KeyObject.from(keys.privateKey),
    publicKey: KeyObject.from(keys.publicKey),
    name,
    cryptoKeys: keys,
  };
}

/** An operator root, an intermediate CA and a license-server leaf. */
export interface TestPki {
  readonly root: Issued;
  readonly intermediate: Issued;
  readonly leaf: Issued;
  /** Leaf-first chain without the root. */
  readonly chain: Uint8Array[];
}

/** Mints a three-level PKI named `prefix`. */
export async function makePki(prefix = 'Operator'): Promise<TestPki> {
  const root = await issue(`${prefix} Root`, undefined, { ca: true });
  const intermediate = await issue(`${prefix} Issuing CA`, root, { ca: true });
  const leaf = await issue(`${prefix} License Server`, intermediate);
  return { root, intermediate, leaf, chain: [leaf.der, intermediate.der] };
}

/** Issues an end-entity certificate for an existing public key (SPKI DER). */
export async function issueForKey(
  cn: string,
  spki: Uint8Array,
  issuer: Issued,
): Promise<Uint8Array> {
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    spki,
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['verify'],
  );
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(4, '0'),
    subject: `CN=${cn}`,
    issuer: issuer.name,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
    signingAlgorithm: ALG,
    publicKey,
    signingKey: issuer.cryptoKeys.privateKey,
    extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  return new Uint8Array(cert.rawData);
}
