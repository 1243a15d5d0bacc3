import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Individualizer } from '../../../src/agent/individualization.js';
import {
  fixedSource,
  readHardwareIdentity,
  type HardwareIdentity,
} from '../../../src/crypto/hardware-identity.js';
import { SoftwareKeyVault } from '../../../src/crypto/key-vault.js';
import { ERRORS, kwError } from '../../../src/errors/index.js';
import {
  decodeMessage,
  encodeMessage,
  keywarden,
  MessageType,
  signMessage,
  verifyMessage,
} from '../../../src/protocol/index.js';
import { issueForKey, makePki, type TestPki } from '../protocol/test-pki.js';

const v1 = keywarden.v1;
const coded = (code: string): Error => expect.objectContaining({ code }) as Error;

type Mode = 'ok' | 'old-version' | 'http-500' | 'wrong-key' | 'other-root';
let pki: TestPki;
let otherPki: TestPki;
let server: Server;
let url: string;
let mode: Mode = 'ok';
let requests: keywarden.v1.ProvisioningRequest[] = [];
let issued = 0;

/** A tiny provisioning authority: verifies proof of possession, issues a certificate. */
async function answer(body: Uint8Array): Promise<Uint8Array> {
  const verified = verifyMessage(body, MessageType.PROVISIONING_REQUEST, {
    proofOfPossession: (p) => decodeMessage(v1.ProvisioningRequest, p, 'req').devicePublicKey,
  });
  const req = decodeMessage(v1.ProvisioningRequest, verified.payload, 'req');
  requests.push(req);
  const signer = mode === 'other-root' ? otherPki : pki;
  let response: keywarden.v1.IProvisioningResponse;
  if (mode === 'old-version') {
    response = {
      error: {
        code: ERRORS.AGENT_UPDATE_REQUIRED.number,
        message: 'too old',
        minAgentVersion: '9.0.0',
      },
    };
  } else {
    const deviceId = `dev-${++issued}`;
    const spki =
      mode === 'wrong-key'
        ? (await import('../../../src/crypto/ecdsa.js')).spkiOf(
            (await import('../../../src/crypto/ecdsa.js')).generateP256KeyPair().publicKey,
          )
        : req.devicePublicKey;
    const cert = await issueForKey(deviceId, spki, signer.intermediate);
    response = {
      grant: {
        deviceCertificate: cert,
        certificateChain: [signer.intermediate.der],
        deviceId,
        serverTimeMs: Date.now(),
      },
    };
  }
  const payload = encodeMessage(v1.ProvisioningResponse, v1.ProvisioningResponse.create(response));
  return signMessage(
    MessageType.PROVISIONING_RESPONSE,
    payload,
    { privateKey: signer.leaf.privateKey, chain: signer.chain },
    { inReplyTo: verified.nonce },
  );
}

beforeAll(async () => {
  pki = await makePki('Operator');
  otherPki = await makePki('Other');
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (mode === 'http-500') return void res.writeHead(500).end();
      answer(Buffer.concat(chunks)).then(
        (out) => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(out),
        (err: Error) => res.writeHead(400).end(err.message),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/provision`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kw-indiv-'));
  mode = 'ok';
  requests = [];
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const identity = (a: string, b: string, c: string): Promise<HardwareIdentity> =>
  readHardwareIdentity([
    fixedSource('machine-id', a),
    fixedSource('board-serial', b),
    fixedSource('cpu-serial', c),
  ]);

function individualizer(
  id: HardwareIdentity,
  agentVersion = '1.0.0',
  maxAttempts = 2,
): Individualizer {
  const vault = new SoftwareKeyVault({ file: path.join(dir, 'vault.json'), identity: id });
  return new Individualizer({
    provisioningUrl: url,
    vault,
    identity: id,
    trustedRoot: pki.root.der,
    agentVersion,
    maxAttempts,
    retryDelayMs: () => 1,
  });
}

describe('Individualizer', () => {
  it('individualizes on first need, once, and reuses the certificate', async () => {
    const id = await identity('m', 'b', 'c');
    const ind = individualizer(id);
    const events: string[] = [];
    ind.on('individualizing', (e) => events.push(`ing:${e.reason}`));
    ind.on('individualized', (e) => events.push(`ed:${e.deviceId}`));
    const [a, b] = await Promise.all([ind.ensureIndividualized(), ind.ensureIndividualized()]);
    expect(a).toBe(b);
    expect(events).toEqual(['ing:PROVISIONING_REASON_FIRST', `ed:${a.deviceId}`]);
    expect(Buffer.from(requests[0]!.hardwareIdDigest).equals(Buffer.from(id.digest))).toBe(true);
    expect(requests[0]!.agentVersion).toBe('1.0.0');
    expect(a.signer.chain).toHaveLength(2);
    // A fresh process on the same hardware: no new request.
    const again = await individualizer(id).ensureIndividualized();
    expect(again.deviceId).toBe(a.deviceId);
    expect(requests).toHaveLength(1);
  });

  it('re-individualizes after an agent update', async () => {
    const id = await identity('m', 'b', 'c');
    await individualizer(id, '1.0.0').ensureIndividualized();
    await individualizer(id, '1.1.0').ensureIndividualized();
    expect(requests.map((r) => r.reason)).toEqual([
      v1.ProvisioningReason.PROVISIONING_REASON_FIRST,
      v1.ProvisioningReason.PROVISIONING_REASON_VERSION_UPDATED,
    ]);
  });

  it('emits hardware-changed (6013) and re-individualizes when a majority of sources changed', async () => {
    const first = await individualizer(await identity('m', 'b', 'c')).ensureIndividualized();
    const ind = individualizer(await identity('m', 'B2', 'C2'));
    const changed: number[] = [];
    ind.on('hardware-changed', (e) => changed.push(e.number));
    const second = await ind.ensureIndividualized();
    expect(changed).toEqual([6013]);
    expect(second.deviceId).not.toBe(first.deviceId);
    expect(second.publicKey.equals(first.publicKey)).toBe(false);
    expect(requests[1]!.reason).toBe(v1.ProvisioningReason.PROVISIONING_REASON_HARDWARE_CHANGED);
    expect(requests[1]!.previousDeviceId).toBe('');
  });

  it('keeps its identity when a minority of sources changed', async () => {
    const first = await individualizer(await identity('m', 'b', 'c')).ensureIndividualized();
    const second = await individualizer(await identity('m', 'b', 'C2')).ensureIndividualized();
    expect(second.deviceId).toBe(first.deviceId);
    expect(requests).toHaveLength(1);
  });

  it('re-individualizes with a new key when a server refuses the certificate', async () => {
    const ind = individualizer(await identity('m', 'b', 'c'));
    const first = await ind.ensureIndividualized();
    const second = await ind.handleRefusal(kwError('CERTIFICATE_REFUSED', 'unknown device'));
    expect(second.publicKey.equals(first.publicKey)).toBe(false);
    expect(requests[1]!.reason).toBe(v1.ProvisioningReason.PROVISIONING_REASON_CERTIFICATE_REFUSED);
    await expect(ind.handleRefusal(kwError('SERVICE_SPECIFIC', 'pay'))).rejects.toThrow(
      coded('SERVICE_SPECIFIC'),
    );
  });

  it('surfaces a version refusal as AGENT_UPDATE_REQUIRED without retrying', async () => {
    mode = 'old-version';
    const err = await individualizer(await identity('m', 'b', 'c'), '0.1.0', 3)
      .ensureIndividualized()
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'AGENT_UPDATE_REQUIRED',
      details: { minAgentVersion: '9.0.0' },
    });
    expect(requests).toHaveLength(1);
  });

  it.each<[Mode, string]>([
    ['http-500', 'TRANSPORT_FAILED'],
    ['wrong-key', 'PROTOCOL_ERROR'],
    ['other-root', 'CERT_UNTRUSTED_ROOT'],
  ])('gives up after the attempt limit (6009) when the server %s', async (m, cause) => {
    mode = m;
    const err = await individualizer(await identity('m', 'b', 'c'))
      .ensureIndividualized()
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INDIVIDUALIZATION_ATTEMPTS_EXCEEDED', number: 6009 });
    expect((err as Error).cause).toMatchObject({ code: cause });
  });

  it('fails with TRANSPORT_FAILED causes when the server is unreachable, and honours abort', async () => {
    const id = await identity('m', 'b', 'c');
    const vault = new SoftwareKeyVault({ file: path.join(dir, 'v.json'), identity: id });
    const ind = new Individualizer({
      provisioningUrl: 'http://127.0.0.1:1/x',
      vault,
      identity: id,
      trustedRoot: pki.root.der,
      agentVersion: '1',
      maxAttempts: 2,
      retryDelayMs: () => 1,
    });
    await expect(ind.ensureIndividualized()).rejects.toThrow(
      coded('INDIVIDUALIZATION_ATTEMPTS_EXCEEDED'),
    );
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(ind.ensureIndividualized(ac.signal)).rejects.toThrow('stop');
  });
});
