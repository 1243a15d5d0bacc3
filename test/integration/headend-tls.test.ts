import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage } from '../../src/protocol/codec.js';
import { MessageType, verifyMessage } from '../../src/protocol/envelope.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import { Headend, startHeadendServer, type HeadendServer } from '../../src/headend/index.js';
import { hasTool } from '../helpers/tools.js';
import { removeDir, TestDevice } from './headend-helpers.js';

const haveOpenssl = hasTool('openssl', ['version']);

/** One HTTPS request that trusts only `ca`. */
function request(
  url: string,
  ca: Buffer,
  body?: Uint8Array,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: body ? 'POST' : 'GET',
        ca,
        headers: body ? { 'content-type': 'application/x-protobuf' } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(!haveOpenssl)('head-end over TLS', () => {
  let dir: string;
  let headend: Headend;
  let server: HeadendServer;
  let cert: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kw-tls-'));
    const [certFile, keyFile] = [path.join(dir, 'tls.crt'), path.join(dir, 'tls.key')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(certFile);
    headend = await Headend.open({ dataDir: path.join(dir, 'data'), env: {} });
    server = await startHeadendServer(headend, {
      port: 0,
      host: '127.0.0.1',
      tls: { cert, key: readFileSync(keyFile) },
    });
  });

  afterAll(async () => {
    await server?.close();
    await headend?.close();
    removeDir(dir);
  });

  it('serves https, and provisions a device over it', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await request(`${server.url}/v1/health`, cert);
    expect(health.status).toBe(200);
    const device = new TestDevice(server.url, headend.rootCertificate);
    const res = await request(`${server.url}/v1/provision`, cert, device.provisioningRequest());
    expect(res.status).toBe(200);
    const verified = verifyMessage(res.body, MessageType.PROVISIONING_RESPONSE, {
      trustedRoot: headend.rootCertificate,
    });
    const answer = decodeMessage(
      keywarden.v1.ProvisioningResponse,
      verified.payload,
      'ProvisioningResponse',
    );
    expect(answer.grant?.deviceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('is refused by a client that does not trust its certificate', async () => {
    await expect(request(`${server.url}/v1/health`, Buffer.from(''))).rejects.toThrow(
      /self.signed|certificate/i,
    );
  });
});
