/**
 * Test devices for the head-end: in-memory P-256 keys, raw protocol over HTTP. Integration
 * tests use them for low-level cases (tampering, replay) and as DeviceCredentials for the
 * agent's clients (LicenseExchange, DomainClient).
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DeviceCredentials } from '../../src/agent/device-credentials.js';
import { generateP256KeyPair, signP256, spkiOf } from '../../src/crypto/ecdsa.js';
import { agreementOf } from '../../src/crypto/ecies.js';
import { decodeMessage, encodeMessage } from '../../src/protocol/codec.js';
import { MessageType, signMessage, verifyMessage } from '../../src/protocol/envelope.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import { Headend, startHeadendServer, type HeadendServer } from '../../src/headend/index.js';
import type { HeadendSettings } from '../../src/headend/settings.js';

const v1 = keywarden.v1;

/** A head-end on loopback over a temp data dir. */
export interface TestHeadend {
  readonly dir: string;
  readonly headend: Headend;
  readonly server: HeadendServer;
  readonly url: string;
  readonly root: Buffer;
  stop(): Promise<void>;
}

/** Starts a head-end in-process on port 0 (a fresh temp dir unless `dir` is given). */
export async function startTestHeadend(
  settings: Partial<HeadendSettings> = {},
  dir = mkdtempSync(path.join(os.tmpdir(), 'kw-headend-')),
  clock?: () => number,
  port = 0,
): Promise<TestHeadend> {
  const env = { KEYWARDEN_MASTER_KEY: '' };
  const headend = await Headend.open({ dataDir: dir, settings, env, ...(clock && { clock }) });
  const server = await startHeadendServer(headend, { port, bodyTimeoutMs: 1500 });
  return {
    dir,
    headend,
    server,
    url: server.url,
    root: headend.rootCertificate,
    stop: async () => {
      await server.close();
      await headend.close();
    },
  };
}

/** A TCP port free on loopback right now (for a server whose URL must be known up front). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Removes a temp data dir. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** POSTs protobuf bytes; returns status and body. */
export async function post(
  url: string,
  body: Uint8Array,
  type = 'application/x-protobuf',
): Promise<{ status: number; body: Uint8Array }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
  return { status: res.status, body: new Uint8Array(await res.arrayBuffer()) };
}

/** Decodes an ErrorReply. */
export function errorReply(body: Uint8Array): keywarden.v1.ErrorReply {
  return v1.ErrorReply.decode(body);
}

/** A simulated device: its key, and after provisioning its certificate chain. */
export class TestDevice {
  readonly key = generateP256KeyPair();
  readonly hardwareId = createHash('sha256').update(randomBytes(16)).digest();
  deviceId = '';
  chain: Uint8Array[] = [];

  constructor(
    readonly baseUrl: string,
    readonly root: Uint8Array,
    readonly agentVersion = '1.0.0',
  ) {}

  get privateKey(): KeyObject {
    return this.key.privateKey;
  }

  /** The provisioning request envelope. */
  provisioningRequest(overrides: keywarden.v1.IProvisioningRequest = {}): Uint8Array {
    const req = v1.ProvisioningRequest.create({
      devicePublicKey: spkiOf(this.key.publicKey),
      hardwareIdDigest: this.hardwareId,
      agentVersion: this.agentVersion,
      attestation: {
        platform: 'linux-x64',
        securityLevel: v1.SecurityLevel.SECURITY_LEVEL_SOFTWARE,
      },
      reason: v1.ProvisioningReason.PROVISIONING_REASON_FIRST,
      ...overrides,
    });
    const payload = encodeMessage(v1.ProvisioningRequest, req);
    return signMessage(MessageType.PROVISIONING_REQUEST, payload, {
      privateKey: this.privateKey,
      chain: [],
    });
  }

  /** Provisions; returns the decoded response (grant or error). */
  async provision(
    overrides: keywarden.v1.IProvisioningRequest = {},
  ): Promise<keywarden.v1.ProvisioningResponse> {
    const res = await post(`${this.baseUrl}/v1/provision`, this.provisioningRequest(overrides));
    if (res.status !== 200)
      throw new Error(`provision HTTP ${res.status}: ${errorReply(res.body).name}`);
    const verified = verifyMessage(res.body, MessageType.PROVISIONING_RESPONSE, {
      trustedRoot: this.root,
    });
    const out = decodeMessage(v1.ProvisioningResponse, verified.payload, 'ProvisioningResponse');
    if (out.grant) {
      this.deviceId = out.grant.deviceId ?? '';
      this.chain = [
        out.grant.deviceCertificate ?? new Uint8Array(0),
        ...(out.grant.certificateChain ?? []),
      ];
    }
    return out;
  }

  /** Signs a license request envelope with this device's key and chain. */
  licenseRequest(
    req: keywarden.v1.ILicenseRequest,
    chain = this.chain,
    opts: { nonce?: Uint8Array; nowMs?: number } = {},
  ): Uint8Array {
    const payload = encodeMessage(
      v1.LicenseRequest,
      v1.LicenseRequest.create({ type: v1.LicenseRequest.RequestType.NEW, ...req }),
    );
    return signMessage(
      MessageType.LICENSE_REQUEST,
      payload,
      { privateKey: this.privateKey, chain },
      opts,
    );
  }

  /** DeviceCredentials for the agent's clients. */
  credentials(): DeviceCredentials {
    const privateKey = this.privateKey;
    return {
      deviceId: this.deviceId,
      publicKey: this.key.publicKey,
      signer: { sign: (d) => signP256(privateKey, d), chain: this.chain },
      keyAgreement: agreementOf(privateKey),
    };
  }
}

/** Decodes a signed LicenseResponse answer (after a 200). */
export function licenseResponse(body: Uint8Array, root: Uint8Array): keywarden.v1.LicenseResponse {
  const verified = verifyMessage(body, MessageType.LICENSE_RESPONSE, { trustedRoot: root });
  return decodeMessage(v1.LicenseResponse, verified.payload, 'LicenseResponse');
}
