import { X509Certificate } from 'node:crypto';
import type { KeySigner } from '../../protocol/envelope.js';
import type { KeySealer } from '../sealing.js';
import type { HeadendRepository, ServiceIdentityRow } from '../store/repository.js';
import {
  generateIssuerKey,
  importIssuerKey,
  importSpki,
  issueCertificate,
  publicOf,
  type CertProfile,
  type IssuerKey,
} from './x509-issuer.js';

/** The operator services that hold a certificate. */
export type ServiceRole = 'root' | 'provisioning' | 'license' | 'fleet';

const YEAR_MS = 365 * 86400_000;

interface RoleSpec {
  readonly subject: string;
  readonly profile: CertProfile;
  readonly years: number;
}

const ROLES: Record<ServiceRole, RoleSpec> = {
  root: { subject: 'CN=keywarden operator root CA,O=keywarden', profile: 'root', years: 20 },
  provisioning: {
    subject: 'CN=keywarden provisioning authority,O=keywarden',
    profile: 'intermediate-ca',
    years: 10,
  },
  license: { subject: 'CN=keywarden license server,O=keywarden', profile: 'signer', years: 5 },
  fleet: { subject: 'CN=keywarden fleet publisher,O=keywarden', profile: 'signer', years: 5 },
};

/** One loaded service identity. */
export interface ServiceIdentity {
  readonly role: ServiceRole;
  readonly certDer: Buffer;
  readonly cert: X509Certificate;
  readonly key: IssuerKey;
}

/**
 * The operator PKI: a root CA that issues the provisioning authority (an intermediate CA
 * for device certificates), the license server and the fleet publisher. Created on first
 * run; private keys are sealed under the master key's 'pki' purpose key.
 */
export class OperatorPki {
  private constructor(private readonly ids: Map<ServiceRole, ServiceIdentity>) {}

  /** Loads the PKI from the store, creating whatever is missing. */
  static async open(
    store: HeadendRepository,
    sealer: KeySealer,
    nowMs: number,
  ): Promise<OperatorPki> {
    const ids = new Map<ServiceRole, ServiceIdentity>();
    for (const role of Object.keys(ROLES) as ServiceRole[]) {
      const root = ids.get('root');
      ids.set(role, await loadOrCreate(store, sealer, role, nowMs, root));
    }
    return new OperatorPki(ids);
  }

  /** The identity of `role`. */
  identity(role: ServiceRole): ServiceIdentity {
    const id = this.ids.get(role);
    if (!id) throw new Error(`operator PKI has no ${role} identity`);
    return id;
  }

  /** The operator root certificate (DER): what devices pin. */
  get rootDer(): Buffer {
    return this.identity('root').certDer;
  }

  /** The operator root, parsed. */
  get rootCert(): X509Certificate {
    return this.identity('root').cert;
  }

  /** An envelope signer for `role`, chain leaf first with the root left out. */
  signer(role: Exclude<ServiceRole, 'root'>): KeySigner {
    const id = this.identity(role);
    return { privateKey: id.key.keyObject, chain: [id.certDer] };
  }

  /** Issues a device certificate: P-256 SPKI, device id as the subject CN. */
  async issueDeviceCertificate(
    spki: Uint8Array,
    deviceId: string,
    notBefore: Date,
    notAfter: Date,
  ): Promise<Buffer> {
    const ca = this.identity('provisioning');
    return issueCertificate({
      subject: `CN=${deviceId},O=keywarden devices`,
      publicKey: await importSpki(spki),
      profile: 'device',
      notBefore,
      notAfter,
      issuerCert: ca.certDer,
      issuerKey: ca.key,
    });
  }
}

async function loadOrCreate(
  store: HeadendRepository,
  sealer: KeySealer,
  role: ServiceRole,
  nowMs: number,
  root: ServiceIdentity | undefined,
): Promise<ServiceIdentity> {
  const row = await store.getServiceIdentity(role);
  if (row) return identityOf(sealer, role, row);
  const spec = ROLES[role];
  const fresh = await generateIssuerKey();
  const certDer = await issueCertificate({
    subject: spec.subject,
    publicKey: await publicOf(fresh.webKey),
    profile: spec.profile,
    // Back-date an hour so that devices with a slightly slow clock accept it at once.
    notBefore: new Date(nowMs - 3600_000),
    notAfter: new Date(nowMs + spec.years * YEAR_MS),
    ...(root && { issuerCert: root.certDer }),
    issuerKey: root?.key ?? fresh,
  });
  const stored = await store.insertServiceIdentity({
    role,
    certDer,
    sealedKey: sealer.seal('pki', role, fresh.pkcs8),
    createdAt: nowMs,
  });
  fresh.pkcs8.fill(0);
  // Another process created this identity first: use its identity, not the one just made.
  if (!stored.certDer.equals(certDer)) return identityOf(sealer, role, stored);
  return { role, certDer, cert: new X509Certificate(certDer), key: fresh };
}

async function identityOf(
  sealer: KeySealer,
  role: ServiceRole,
  row: ServiceIdentityRow,
): Promise<ServiceIdentity> {
  const key = await importIssuerKey(sealer.open('pki', role, row.sealedKey));
  return { role, certDer: row.certDer, cert: new X509Certificate(row.certDer), key };
}
