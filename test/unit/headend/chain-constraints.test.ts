import { webcrypto, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkDeviceChainConstraints } from '../../../src/headend/pki/chain-constraints.js';
import { loadX509 } from '../../../src/headend/pki/x509-issuer.js';

type X509 = Awaited<ReturnType<typeof loadX509>>;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
type Pair = webcrypto.CryptoKeyPair;

interface CertSpec {
  readonly subject: string;
  /** basicConstraints: [cA, pathLength]; null leaves the extension out. */
  readonly bc?: [boolean, number | undefined] | null;
  /** keyUsage flags; undefined leaves the extension out. */
  readonly ku?: number;
  /** extendedKeyUsage OIDs; undefined leaves the extension out. */
  readonly eku?: string[];
}

async function certificate(
  x509: X509,
  spec: CertSpec,
  keys: Pair,
  issuer?: { name: string; keys: Pair },
): Promise<X509Certificate> {
  const exts = [];
  if (spec.bc !== null && spec.bc !== undefined)
    exts.push(new x509.BasicConstraintsExtension(spec.bc[0], spec.bc[1], true));
  if (spec.ku !== undefined) exts.push(new x509.KeyUsagesExtension(spec.ku, true));
  if (spec.eku !== undefined) exts.push(new x509.ExtendedKeyUsageExtension(spec.eku, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01',
    subject: spec.subject,
    issuer: issuer?.name ?? spec.subject,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 3600_000),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey as never,
    signingKey: (issuer?.keys ?? keys).privateKey as never,
    extensions: exts,
  });
  return new X509Certificate(Buffer.from(cert.rawData));
}

const pair = async (): Promise<Pair> =>
  (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as Pair;

/** A root → CA → device path, each certificate overridable. */
async function chain(
  over: { root?: Partial<CertSpec>; ca?: Partial<CertSpec>; leaf?: Partial<CertSpec> } = {},
) {
  const x509 = await loadX509();
  const F = x509.KeyUsageFlags;
  const [rk, ck, lk] = [await pair(), await pair(), await pair()];
  const root = await certificate(
    x509,
    { subject: 'CN=root', bc: [true, 1], ku: F.keyCertSign | F.cRLSign, ...over.root },
    rk,
  );
  const ca = await certificate(
    x509,
    { subject: 'CN=ca', bc: [true, 0], ku: F.keyCertSign, ...over.ca },
    ck,
    { name: 'CN=root', keys: rk },
  );
  const leaf = await certificate(
    x509,
    {
      subject: 'CN=dev',
      bc: [false, undefined],
      ku: F.digitalSignature | F.keyAgreement,
      ...over.leaf,
    },
    lk,
    { name: 'CN=ca', keys: ck },
  );
  return [leaf, ca, root];
}

const refusal = async (path: X509Certificate[]): Promise<unknown> =>
  checkDeviceChainConstraints(path).then(
    () => 'accepted',
    (err: { code?: string; message?: string }) => `${err.code}: ${err.message}`,
  );

describe('device chain extension rules', () => {
  it('accepts the operator profile, and extensions left out', async () => {
    expect(await refusal(await chain())).toBe('accepted');
    const x509 = await loadX509();
    expect(
      await refusal(
        await chain({
          leaf: { bc: null, ku: undefined, eku: [x509.ExtendedKeyUsage.clientAuth] },
          ca: { ku: undefined },
        }),
      ),
    ).toBe('accepted');
  });

  it('refuses a CA certificate used as a device certificate', async () => {
    expect(await refusal(await chain({ leaf: { bc: [true, undefined] } }))).toMatch(
      /CERT_CHAIN_INVALID: "CN=dev" is a CA/,
    );
  });

  it('refuses a device key that may not sign or may not agree keys', async () => {
    const F = (await loadX509()).KeyUsageFlags;
    expect(await refusal(await chain({ leaf: { ku: F.keyAgreement } }))).toMatch(/may not sign/);
    expect(await refusal(await chain({ leaf: { ku: F.digitalSignature } }))).toMatch(
      /may not agree keys/,
    );
  });

  it('refuses extended key usages that exclude client authentication', async () => {
    const x509 = await loadX509();
    expect(
      await refusal(await chain({ leaf: { eku: [x509.ExtendedKeyUsage.serverAuth] } })),
    ).toMatch(/"CN=dev" is not for client authentication/);
    expect(
      await refusal(await chain({ ca: { eku: [x509.ExtendedKeyUsage.codeSigning] } })),
    ).toMatch(/"CN=ca" may not issue client-authentication/);
    expect(await refusal(await chain({ leaf: { eku: ['2.5.29.37.0'] } }))).toBe('accepted');
  });

  it('refuses issuers that are not CAs, may not sign certificates, or whose path length is exceeded', async () => {
    const F = (await loadX509()).KeyUsageFlags;
    expect(await refusal(await chain({ ca: { bc: null } }))).toMatch(/"CN=ca" issues certificates/);
    expect(await refusal(await chain({ ca: { ku: F.digitalSignature } }))).toMatch(
      /"CN=ca" may not sign certificates/,
    );
    expect(await refusal(await chain({ root: { bc: [true, 0] } }))).toMatch(
      /"CN=root" allows 0 intermediate\(s\) below it, the path has 1/,
    );
  });
});
