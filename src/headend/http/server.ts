/**
 * The head-end's HTTP(S) transport. Error policy (what a client sees):
 * - 200 + a *signed* response (`ProvisioningResponse`, `LicenseResponse`, `Domain*Response`,
 *   `inReplyTo` = the request nonce) whenever the request was authenticated: refusals then
 *   travel as a signed `ProvisioningError` / `LicenseError` with the catalogue number
 *   (6007 + custom data, 6040/6041/6042 + domain URL, service id and account id, 7403
 *   rate limit, 7407 version too old + minimum, 7408 unknown key ...).
 * - 4xx/5xx + an *unsigned* `ErrorReply{code, name, message}` (and an
 *   `X-Keywarden-Error: NUMBER NAME` header) when the request could not be read or
 *   authenticated: 400 malformed/truncated/wrong message type, 403 bad signature, foreign
 *   root, expired certificate, revoked or unknown device, 404 unknown endpoint, 408 body
 *   too slow, 409 replayed or stale nonce, 413 body over the limit, 415 not
 *   application/x-protobuf, 500 internal (no details). The server signs nothing for a
 *   party it could not authenticate.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { kwError } from '../../errors/index.js';
import type { Headend } from '../index.js';
import { checkContentType, PROTOBUF_TYPE, readBody } from './body.js';
import { asCoded, errorReplyBody, statusOf } from './error-reply.js';

/** How to serve. */
export interface ServerOptions {
  /** TCP port; 0 picks one (default 8443). */
  readonly port?: number;
  /** Interface to bind; default 127.0.0.1. */
  readonly host?: string;
  /** PEM certificate and key: serve HTTPS. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Largest request body; default 64 KiB (a license request is well under 4 KiB). */
  readonly bodyLimit?: number;
  /** Deadline to receive a body once headers arrived; default 10 s. */
  readonly bodyTimeoutMs?: number;
  /** Deadline to receive the headers; default 10 s. */
  readonly headersTimeoutMs?: number;
  /** Called with each error answer (logging). */
  readonly onError?: (status: number, code: string, message: string) => void;
}

/** A listening head-end. */
export interface HeadendServer {
  readonly url: string;
  readonly port: number;
  readonly server: http.Server;
  close(): Promise<void>;
}

type Handler = (body: Uint8Array) => Uint8Array | Promise<Uint8Array>;

function routes(h: Headend): Record<string, Handler> {
  return {
    '/v1/provision': (b) => h.provisioning.handle(b),
    '/v1/license': (b) => h.licenses.handle(b),
    '/v1/domain/join': (b) => h.domains.join(b),
    '/v1/domain/leave': (b) => h.domains.leave(b),
    '/v1/domain/members': (b) => h.domains.members(b),
  };
}

function send(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: Uint8Array,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': body.length,
    'Cache-Control': 'no-store',
    ...extra,
  });
  res.end(body);
}

function sendError(
  res: http.ServerResponse,
  err: unknown,
  opts: ServerOptions,
  bodyRead: boolean,
): void {
  const coded = asCoded(err);
  const status = statusOf(coded);
  opts.onError?.(
    status,
    coded.code,
    status >= 500
      ? String((coded.cause as Error | undefined)?.stack ?? coded.message)
      : coded.message,
  );
  if (res.headersSent) return void res.destroy();
  // An unread body would be parsed as the next request: close such connections.
  const close: Record<string, string> = bodyRead ? {} : { Connection: 'close' };
  send(res, status, PROTOBUF_TYPE, errorReplyBody(coded, status), {
    'X-Keywarden-Error': `${coded.number} ${coded.code}`,
    ...close,
  });
}

function serveGet(h: Headend, path: string, res: http.ServerResponse): boolean {
  if (path === '/v1/health') {
    const body = JSON.stringify({
      status: 'ok',
      pid: process.pid,
      schema: h.ctx.store.schemaVersion(),
    });
    send(res, 200, 'application/json', Buffer.from(body));
    return true;
  }
  if (path === '/v1/pki/root') {
    send(res, 200, 'application/pkix-cert', h.rootCertificate);
    return true;
  }
  return false;
}

async function serve(
  h: Headend,
  table: Record<string, Handler>,
  opts: Required<Pick<ServerOptions, 'bodyLimit' | 'bodyTimeoutMs'>> & ServerOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  let bodyRead = false;
  try {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && serveGet(h, path, res)) return;
    const handler = table[path];
    if (!handler || req.method !== 'POST')
      throw kwError('HEADEND_NOT_FOUND', `${req.method} ${path} is not an endpoint`);
    checkContentType(req);
    const body = await readBody(req, opts.bodyLimit, opts.bodyTimeoutMs);
    bodyRead = true;
    send(res, 200, PROTOBUF_TYPE, await handler(body));
  } catch (err) {
    sendError(res, err, opts, bodyRead);
  }
}

/** Serves `headend` over HTTP(S); resolves once listening. */
export async function startHeadendServer(
  headend: Headend,
  options: ServerOptions = {},
): Promise<HeadendServer> {
  const opts = { bodyLimit: 64 * 1024, bodyTimeoutMs: 10_000, ...options };
  const table = routes(headend);
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void =>
    void serve(headend, table, opts, req, res);
  const server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, listener)
    : http.createServer(listener);
  server.headersTimeout = opts.headersTimeoutMs ?? 10_000;
  server.requestTimeout = (opts.headersTimeoutMs ?? 10_000) + opts.bodyTimeoutMs + 5_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8443, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  return {
    url: `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
