/**
 * Valid signed protocol messages for the protocol fuzz campaign, produced in-process by a
 * real head-end over a temp data dir: a provisioning request and response, a license
 * request and response, and domain join, leave and members requests (the seed device is a
 * member of the fuzz account's domain, so leave and members requests get past the
 * membership check). Each seed knows how to re-sign a
 * mutated payload or body, and which code path (head-end handler or device parser) takes it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import { unwrapLicense } from '../../src/agent/license-keys.js';
import { parseCertificate, verifyCertificateChain } from '../../src/crypto/cert-chain.js';
import { generateP256KeyPair, signP256, spkiOf } from '../../src/crypto/ecdsa.js';
import { agreementOf } from '../../src/crypto/ecies.js';
import { Headend } from '../../src/headend/index.js';
import type { KeySigner } from '../../src/protocol/envelope.js';
import { fieldCodec, type FieldCodec } from './protocol-fields.js';
import {
  decodeMessage,
  encodeMessage,
  keywarden,
  MessageType,
  signMessage,
  verifyMessage,
} from '../../src/protocol/index.js';

const v1 = keywarden.v1;

/** One valid message and how to check (mutated) bytes of its kind. */
export interface ProtocolSeed {
  readonly name: string;
  readonly type: MessageType;
  /** The valid envelope. */
  readonly envelope: Uint8Array;
  /** Its payload. */
  readonly payload: Uint8Array;
  /** Its payload's fields, for field-level mutations. */
  readonly fields: FieldCodec;
  /** Who signed it: re-signs mutated bodies and payloads. */
  readonly signer: KeySigner;
  /** The HTTP endpoint that takes it, for requests (the head-end's side); none: the device's. */
  readonly endpoint?: string;
  /** Runs the bytes through the code that takes this message; resolves or throws. */
  consume(bytes: Uint8Array): Promise<void> | void;
}

/** A head-end and the seeds minted against it. */
export interface ProtocolFixture {
  readonly headend: Headend;
  /** The head-end's (frozen) clock: re-signed messages carry this time. */
  readonly nowMs: number;
  readonly seeds: readonly ProtocolSeed[];
  /** Closes the head-end and removes its data dir. */
  close(): Promise<void>;
}

interface Device {
  readonly key: { privateKey: KeyObject; publicKey: KeyObject };
  readonly signer: KeySigner;
  readonly deviceId: string;
}

interface Provisioned {
  readonly device: Device;
  readonly request: Uint8Array;
  readonly answer: Uint8Array;
}

async function provisionDevice(h: Headend, nowMs: number): Promise<Provisioned> {
  const key = generateP256KeyPair();
  const payload = encodeMessage(
    v1.ProvisioningRequest,
    v1.ProvisioningRequest.create({
      devicePublicKey: spkiOf(key.publicKey),
      hardwareIdDigest: Buffer.alloc(32, 7),
      agentVersion: '1.0.0',
      attestation: { platform: 'fuzz', securityLevel: v1.SecurityLevel.SECURITY_LEVEL_SOFTWARE },
      reason: v1.ProvisioningReason.PROVISIONING_REASON_FIRST,
    }),
  );
  const request = signMessage(
    MessageType.PROVISIONING_REQUEST,
    payload,
    { privateKey: key.privateKey, chain: [] },
    { nowMs },
  );
  const answer = await h.provisioning.handle(request);
  const verified = verifyMessage(answer, MessageType.PROVISIONING_RESPONSE, {
    trustedRoot: h.rootCertificate,
    nowMs,
  });
  const grant = decodeMessage(v1.ProvisioningResponse, verified.payload, 'fuzz').grant;
  if (!grant?.deviceId) throw new Error('fuzz: the seed device was not provisioned');
  const chain = [grant.deviceCertificate ?? new Uint8Array(0), ...(grant.certificateChain ?? [])];
  return {
    device: { key, signer: { privateKey: key.privateKey, chain }, deviceId: grant.deviceId },
    request,
    answer,
  };
}

function payloadOf(envelope: Uint8Array): Uint8Array {
  const outer = v1.SignedMessage.decode(envelope);
  return v1.SignedBody.decode(outer.body).payload;
}

const FUZZ_ACCOUNT = 'fuzz-account';

async function setUp(h: Headend): Promise<void> {
  const a = h.admin;
  await a.setPolicy('fuzz', {
    'license-duration': '24h',
    'can-persist': 'true',
    'can-renew': 'true',
  });
  await a.addContentKey({
    kid: Buffer.alloc(16, 0xf1),
    key: Buffer.alloc(16, 0x1f),
    policy: 'fuzz',
  });
  await a.createDomain(FUZZ_ACCOUNT, { maxDevices: 1_000_000 });
}

/** Signs a domain request of the seed device. */
function domainRequest<T>(
  type: MessageType,
  cls: { create(p: object): T; encode(m: T): { finish(): Uint8Array } },
  fields: object,
  d: Device,
  nowMs: number,
): Uint8Array {
  return signMessage(type, cls.encode(cls.create(fields)).finish(), d.signer, { nowMs });
}

/** Makes the seed device a member of the fuzz domain (its own request, its own nonce). */
async function joinDomain(h: Headend, d: Device, nowMs: number): Promise<void> {
  const answer = await h.domains.join(
    domainRequest(
      MessageType.DOMAIN_JOIN_REQUEST,
      v1.DomainJoinRequest,
      { accountId: FUZZ_ACCOUNT, friendlyName: 'fuzz box' },
      d,
      nowMs,
    ),
  );
  const v = verifyMessage(answer, MessageType.DOMAIN_JOIN_RESPONSE, {
    trustedRoot: h.rootCertificate,
    nowMs,
  });
  if (!decodeMessage(v1.DomainJoinResponse, v.payload, 'fuzz').grant)
    throw new Error('fuzz: the seed device did not join the domain');
}

function requestSeeds(h: Headend, p: Provisioned, nowMs: number): ProtocolSeed[] {
  const d = p.device;
  const provisioning = p.request;
  const license = signMessage(
    MessageType.LICENSE_REQUEST,
    encodeMessage(
      v1.LicenseRequest,
      v1.LicenseRequest.create({
        type: v1.LicenseRequest.RequestType.NEW,
        keyIds: [Buffer.alloc(16, 0xf1)],
        clientInfo: { agentVersion: '1.0.0' },
      }),
    ),
    d.signer,
    { nowMs },
  );
  const join = domainRequest(
    MessageType.DOMAIN_JOIN_REQUEST,
    v1.DomainJoinRequest,
    { accountId: FUZZ_ACCOUNT, friendlyName: 'fuzz box' },
    d,
    nowMs,
  );
  const leave = domainRequest(
    MessageType.DOMAIN_LEAVE_REQUEST,
    v1.DomainLeaveRequest,
    { accountId: FUZZ_ACCOUNT },
    d,
    nowMs,
  );
  const members = domainRequest(
    MessageType.DOMAIN_MEMBERS_REQUEST,
    v1.DomainMembersRequest,
    { accountId: FUZZ_ACCOUNT },
    d,
    nowMs,
  );
  return [
    {
      name: 'provisioning-request',
      fields: fieldCodec(v1.ProvisioningRequest),
      type: MessageType.PROVISIONING_REQUEST,
      envelope: provisioning,
      payload: payloadOf(provisioning),
      signer: { privateKey: d.key.privateKey, chain: [] },
      endpoint: '/v1/provision',
      consume: async (b) => void (await h.provisioning.handle(b)),
    },
    {
      name: 'license-request',
      fields: fieldCodec(v1.LicenseRequest),
      type: MessageType.LICENSE_REQUEST,
      envelope: license,
      payload: payloadOf(license),
      signer: d.signer,
      endpoint: '/v1/license',
      consume: async (b) => void (await h.licenses.handle(b)),
    },
    {
      name: 'domain-join-request',
      fields: fieldCodec(v1.DomainJoinRequest),
      type: MessageType.DOMAIN_JOIN_REQUEST,
      envelope: join,
      payload: payloadOf(join),
      signer: d.signer,
      endpoint: '/v1/domain/join',
      consume: async (b) => void (await h.domains.join(b)),
    },
    {
      name: 'domain-leave-request',
      fields: fieldCodec(v1.DomainLeaveRequest),
      type: MessageType.DOMAIN_LEAVE_REQUEST,
      envelope: leave,
      payload: payloadOf(leave),
      signer: d.signer,
      endpoint: '/v1/domain/leave',
      consume: async (b) => void (await h.domains.leave(b)),
    },
    {
      name: 'domain-members-request',
      fields: fieldCodec(v1.DomainMembersRequest),
      type: MessageType.DOMAIN_MEMBERS_REQUEST,
      envelope: members,
      payload: payloadOf(members),
      signer: d.signer,
      endpoint: '/v1/domain/members',
      consume: async (b) => void (await h.domains.members(b)),
    },
  ];
}

/** The device's parsers: the signed answer, then what the agent does with it. */
async function responseSeeds(
  h: Headend,
  p: Provisioned,
  license: Uint8Array,
  nowMs: number,
): Promise<ProtocolSeed[]> {
  const root = h.rootCertificate;
  const rootCert = parseCertificate(root);
  const d = p.device;
  const licenseAnswer = await h.licenses.handle(license);
  return [
    {
      name: 'license-response',
      fields: fieldCodec(v1.LicenseResponse),
      type: MessageType.LICENSE_RESPONSE,
      envelope: licenseAnswer,
      payload: payloadOf(licenseAnswer),
      signer: h.ctx.pki.signer('license'),
      consume: (b) => {
        const v = verifyMessage(b, MessageType.LICENSE_RESPONSE, { trustedRoot: root, nowMs });
        const res = decodeMessage(v1.LicenseResponse, v.payload, 'LicenseResponse');
        if (res.license)
          unwrapLicense(res.license, {
            deviceId: d.deviceId,
            device: agreementOf(d.key.privateKey),
          });
      },
    },
    {
      name: 'provisioning-response',
      fields: fieldCodec(v1.ProvisioningResponse),
      type: MessageType.PROVISIONING_RESPONSE,
      envelope: p.answer,
      payload: payloadOf(p.answer),
      signer: h.ctx.pki.signer('provisioning'),
      consume: (b) => {
        const v = verifyMessage(b, MessageType.PROVISIONING_RESPONSE, { trustedRoot: root, nowMs });
        const res = decodeMessage(v1.ProvisioningResponse, v.payload, 'ProvisioningResponse');
        const g = res.grant;
        if (!g) return;
        // What Individualizer.checkGrant does with a grant.
        const chain = [g.deviceCertificate ?? new Uint8Array(0), ...(g.certificateChain ?? [])];
        verifyCertificateChain(chain, rootCert, nowMs);
      },
    },
  ];
}

/** Opens a head-end in a temp dir and mints one seed of each kind. */
export async function protocolFixture(): Promise<ProtocolFixture> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-fuzz-headend-'));
  // A frozen clock keeps every seed fresh however long the campaign runs.
  const nowMs = Date.now();
  const headend = await Headend.open({
    dataDir: dir,
    env: { KEYWARDEN_MASTER_KEY: '' },
    settings: { provisioningLimit: Number.MAX_SAFE_INTEGER },
    clock: () => nowMs,
  });
  await setUp(headend);
  const provisioned = await provisionDevice(headend, nowMs);
  await joinDomain(headend, provisioned.device, nowMs);
  const requests = requestSeeds(headend, provisioned, nowMs);
  const license = requestSeeds(headend, provisioned, nowMs)[1]!.envelope;
  const seeds = [...requests, ...(await responseSeeds(headend, provisioned, license, nowMs))];
  return {
    headend,
    nowMs,
    seeds,
    close: async () => {
      await headend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Signs `body` (SignedBody bytes) as the seed's signer would. */
export function resignBody(seed: ProtocolSeed, body: Uint8Array): Uint8Array {
  return encodeMessage(
    v1.SignedMessage,
    v1.SignedMessage.create({
      body,
      signature: signP256(seed.signer.privateKey, body),
      certChain: [...seed.signer.chain],
    }),
  );
}
