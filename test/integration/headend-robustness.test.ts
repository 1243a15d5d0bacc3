import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors/index.js';
import { startHeadendServer } from '../../src/headend/index.js';
import {
  errorReply,
  licenseResponse,
  post,
  removeDir,
  startTestHeadend,
  TestDevice,
  type TestHeadend,
} from './headend-helpers.js';

const ENDPOINTS = [
  '/v1/provision',
  '/v1/license',
  '/v1/domain/join',
  '/v1/domain/leave',
  '/v1/domain/members',
];
const KID = Buffer.alloc(16, 0x42);
let he: TestHeadend;
let dev: TestDevice;

/** The server still answers a valid request after whatever came before. */
async function stillServes(): Promise<void> {
  const r = await post(`${he.url}/v1/license`, dev.licenseRequest({ keyIds: [KID] }));
  expect(r.status).toBe(200);
  expect(licenseResponse(r.body, he.root).license?.keys).toHaveLength(1);
}

/** Sends raw bytes on a socket and returns the whole answer text. */
function raw(request: string | Buffer, waitMs = 4000, port = he.server.port): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(request));
    let out = '';
    sock.on('data', (d) => (out += d.toString('latin1')));
    sock.on('close', () => resolve(out));
    sock.on('error', reject);
    setTimeout(() => sock.destroy(), waitMs);
  });
}

beforeAll(async () => {
  he = await startTestHeadend();
  await he.headend.admin.addContentKey({ kid: KID, key: Buffer.alloc(16, 9) });
  dev = new TestDevice(he.url, he.root);
  await dev.provision();
});

afterAll(async () => {
  await he.stop();
  removeDir(he.dir);
});

describe.each(ENDPOINTS)('bad input to %s', (endpoint) => {
  it('answers malformed protobuf with 400 and a coded ErrorReply', async () => {
    const r = await post(
      `${he.url}${endpoint}`,
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]),
    );
    expect(r.status).toBe(400);
    expect(errorReply(r.body).code).toBe(ERRORS.DECODE_FAILED.number);
    await stillServes();
  });

  it('answers truncated bodies with 400', async () => {
    const valid = dev.licenseRequest({ keyIds: [KID] });
    for (const cut of [1, 10, valid.length >> 1, valid.length - 1]) {
      const r = await post(`${he.url}${endpoint}`, valid.subarray(0, cut));
      expect([400, 403]).toContain(r.status);
      expect(errorReply(r.body).code).toBeGreaterThan(0);
    }
    await stillServes();
  });

  it('answers random bytes with a 4xx and a coded ErrorReply (fuzz)', async () => {
    for (let i = 0; i < 40; i++) {
      const r = await post(
        `${he.url}${endpoint}`,
        randomBytes(1 + Math.floor(Math.random() * 600)),
      );
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(errorReply(r.body).code).toBeGreaterThan(0);
    }
    await stillServes();
  });

  it('answers an oversized body with 413', async () => {
    const r = await post(`${he.url}${endpoint}`, Buffer.alloc(65 * 1024 + 1));
    expect(r.status).toBe(413);
    expect(errorReply(r.body).code).toBe(ERRORS.HEADEND_BODY_TOO_LARGE.number);
    await stillServes();
  });

  it('answers the wrong content type with 415', async () => {
    const r = await post(
      `${he.url}${endpoint}`,
      dev.licenseRequest({ keyIds: [KID] }),
      'application/json',
    );
    expect(r.status).toBe(415);
    expect(errorReply(r.body).code).toBe(ERRORS.HEADEND_UNSUPPORTED_MEDIA_TYPE.number);
    await stillServes();
  });
});

describe('transport limits', () => {
  it('times out a slow client with 408 and a coded body', async () => {
    const head = `POST /v1/license HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n`;
    const answer = await raw(`${head}abc`);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(answer).toContain(`X-Keywarden-Error: ${ERRORS.HEADEND_TIMEOUT.number}`);
    await stillServes();
  });

  it('answers a client too slow to send its headers with 408 and a coded body', async () => {
    const logged: string[] = [];
    const quick = await startHeadendServer(he.headend, {
      port: 0,
      headersTimeoutMs: 600,
      onError: (status, code) => logged.push(`${status} ${code}`),
    });
    try {
      const started = Date.now();
      const answer = await raw(`POST /v1/license HTTP/1.1\r\nHost: x\r\n`, 5000, quick.port);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(answer).toContain(
        `X-Keywarden-Error: ${ERRORS.HEADEND_TIMEOUT.number} HEADEND_TIMEOUT`,
      );
      const body = Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1');
      expect(errorReply(body)).toMatchObject({
        code: ERRORS.HEADEND_TIMEOUT.number,
        name: 'HEADEND_TIMEOUT',
      });
      expect(logged).toContain('408 HEADEND_TIMEOUT');
    } finally {
      await quick.close();
    }
    await stillServes();
  });

  it('answers malformed HTTP with 400 and a coded body', async () => {
    const answer = await raw(
      `POST /v1/license HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toContain(`X-Keywarden-Error: ${ERRORS.HEADEND_BAD_REQUEST.number}`);
    const body = Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1');
    expect(errorReply(body).code).toBe(ERRORS.HEADEND_BAD_REQUEST.number);
    await stillServes();
  });

  it('refuses a declared oversized body before reading it', async () => {
    const answer = await raw(
      `POST /v1/license HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 99999999\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    await stillServes();
  });

  it('answers unknown paths and methods with 404', async () => {
    expect((await fetch(`${he.url}/v1/nope`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${he.url}/v1/license`)).status).toBe(404);
    await stillServes();
  });

  it('answers a request of the wrong message type with 400', async () => {
    const r = await post(`${he.url}/v1/domain/join`, dev.licenseRequest({ keyIds: [KID] }));
    expect(r.status).toBe(400);
    expect(errorReply(r.body).code).toBe(ERRORS.MESSAGE_TYPE_MISMATCH.number);
  });
});
