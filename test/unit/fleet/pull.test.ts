import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isKeywardenError } from '../../../src/errors/index.js';
import { pullRevocationList } from '../../../src/fleet/index.js';

let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    switch (req.url) {
      case '/ok':
        res
          .writeHead(200, { 'content-type': 'application/x-protobuf' })
          .end(Buffer.from([1, 2, 3]));
        return;
      case '/big':
        res.writeHead(200).end(Buffer.alloc(5000));
        return;
      case '/chunked-big':
        res.writeHead(200);
        res.write(Buffer.alloc(3000));
        res.end(Buffer.alloc(3000));
        return;
      case '/none':
        res.writeHead(404).end();
        return;
      default:
        res.writeHead(500).end('boom');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return isKeywardenError(err) ? err.code : 'NOT_CODED';
  }
  return undefined;
}

describe('pullRevocationList', () => {
  it('returns the body bytes', async () => {
    expect(Array.from((await pullRevocationList(`${base}/ok`))!)).toEqual([1, 2, 3]);
  });
  it('returns undefined when there is no list yet', async () => {
    expect(await pullRevocationList(`${base}/none`)).toBeUndefined();
  });
  it('refuses oversized bodies, declared or streamed', async () => {
    expect(await codeOf(pullRevocationList(`${base}/big`, { maxBytes: 4096 }))).toBe(
      'FLEET_PAYLOAD_TOO_LARGE',
    );
    expect(await codeOf(pullRevocationList(`${base}/chunked-big`, { maxBytes: 4096 }))).toBe(
      'FLEET_PAYLOAD_TOO_LARGE',
    );
  });
  it('maps HTTP and network failures to TRANSPORT_FAILED', async () => {
    expect(await codeOf(pullRevocationList(`${base}/err`))).toBe('TRANSPORT_FAILED');
    expect(await codeOf(pullRevocationList('http://127.0.0.1:1/x', { timeoutMs: 2000 }))).toBe(
      'TRANSPORT_FAILED',
    );
  });
});
