/**
 * The head-end's HTTP(S) transport. Error policy (what a client sees):
 * - 200 + a *signed* response (`ProvisioningResponse`, `LicenseResponse`, `Domain*Response`,
 *   `inReplyTo` = the request nonce) whenever the request was authenticated: refusals then
 *   travel as a signed `ProvisioningError` / `LicenseError` with the catalogue number
 *   (6007 + custom data, 6040/6041/6042 + domain URL, service id and account id, 7403
 *   rate limit, 7407 version too old + minimum, 7408 unknown key ...).
 * - 4xx/5xx + an *unsigned* `ErrorReply{code, name, message}` (and an
 *   `X-Keywarden-Error: NUMBER NAME` header) when the request could not be read or
 *   authenticated: 400 malformed/truncated/wrong message type or malformed HTTP, 403 bad
 *   signature, foreign root, expired certificate, revoked or unknown device, 404 unknown
 *   endpoint, 408 headers or body too slow, 409 replayed or stale nonce, 413 body over the
 *   limit, 415 not application/x-protobuf, 431 headers too large, 500 internal (no
 *   details), 503 database unavailable. The server signs nothing for a party it could not
 *   authenticate.
 * Every request is answered: a handler's failure of any kind becomes a coded ErrorReply,
 * and a failure while answering closes the connection rather than leaving it hanging.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { kwError, type KeywardenError } from '../../errors/index.js';
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
  /** Deadline to receive the headers; default 10 s. A late client gets 408 HEADEND_TIMEOUT. */
  readonly headersTimeoutMs?: number;
  /**
   * On {@link HeadendServer.close}: how long requests in flight may still take before their
   * connections are cut; default 10 s.
   */
  readonly shutdownGraceMs?: number;
  /** Called with each error answer (logging). */
  readonly onError?: (status: number, code: string, message: string) => void;
}

/** A listening head-end. */
export interface HeadendServer {
  readonly url: string;
  readonly port: number;
  readonly server: http.Server;
  /** Requests being answered now. */
  readonly inFlight: number;
  /**
   * Graceful stop: stops accepting connections, closes idle keep-alive connections, lets the
   * requests in flight finish (their answers carry `Connection: close`), cuts whatever is
   * left after the grace period, and resolves once every connection is closed. Idempotent.
   */
  close(): Promise<void>;
}

type Handler = (body: Uint8Array) => Promise<Uint8Array>;
type Options = Required<
  Pick<ServerOptions, 'bodyLimit' | 'bodyTimeoutMs' | 'headersTimeoutMs' | 'shutdownGraceMs'>
> &
  ServerOptions;

/** What every request of one server shares. */
interface Serving {
  readonly headend: Headend;
  readonly table: Record<string, Handler>;
  readonly opts: Options;
  closing: boolean;
  inFlight: number;
  /** Open connections and how many of their requests are being answered. */
  readonly connections: Map<Duplex, number>;
}

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
  s: Serving,
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
    // While shutting down, no connection is kept for a next request.
    ...(s.closing && { Connection: 'close' }),
    ...extra,
  });
  res.end(body);
}

/** Logs without letting a failing logger break the answer. */
function report(opts: ServerOptions, status: number, code: string, message: string): void {
  try {
    opts.onError?.(status, code, message);
  } catch {
    // The answer matters more than its log line.
  }
}

function sendError(s: Serving, res: http.ServerResponse, err: unknown, bodyRead: boolean): void {
  const coded = asCoded(err);
  const status = statusOf(coded);
  report(
    s.opts,
    status,
    coded.code,
    status >= 500
      ? String((coded.cause as Error | undefined)?.stack ?? coded.message)
      : coded.message,
  );
  if (res.headersSent) return void res.destroy();
  // An unread body would be parsed as the next request: close such connections.
  const close: Record<string, string> = bodyRead ? {} : { Connection: 'close' };
  send(s, res, status, PROTOBUF_TYPE, errorReplyBody(coded, status), {
    'X-Keywarden-Error': `${coded.number} ${coded.code}`,
    ...close,
  });
}

async function serveGet(s: Serving, path: string, res: http.ServerResponse): Promise<boolean> {
  if (path === '/v1/health') {
    const body = JSON.stringify({
      status: s.closing ? 'closing' : 'ok',
      pid: process.pid,
      schema: await s.headend.ctx.store.schemaVersion(),
    });
    send(s, res, 200, 'application/json', Buffer.from(body));
    return true;
  }
  if (path === '/v1/fleet/revocations') {
    // The devices' pull fallback: the latest signed list, the same bytes as the retained one.
    const list = await s.headend.fleet.lists.latest();
    send(s, res, 200, PROTOBUF_TYPE, list.signed);
    return true;
  }
  if (path === '/v1/pki/root') {
    send(s, res, 200, 'application/pkix-cert', s.headend.rootCertificate);
    return true;
  }
  return false;
}

async function serve(
  s: Serving,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  let bodyRead = false;
  try {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && (await serveGet(s, path, res))) return;
    const handler = s.table[path];
    if (!handler || req.method !== 'POST')
      throw kwError('HEADEND_NOT_FOUND', `${req.method} ${path} is not an endpoint`);
    checkContentType(req);
    const body = await readBody(req, s.opts.bodyLimit, s.opts.bodyTimeoutMs);
    bodyRead = true;
    send(s, res, 200, PROTOBUF_TYPE, await handler(body));
  } catch (err) {
    sendError(s, res, err, bodyRead);
  }
}

/** The coded answer to an HTTP-level client error, or undefined for a dead connection. */
function clientErrorAnswer(
  err: NodeJS.ErrnoException,
): { status: number; reason: string; coded: KeywardenError } | undefined {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        status: 408,
        reason: 'Request Timeout',
        coded: kwError('HEADEND_TIMEOUT', 'the request was not received in time'),
      };
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        reason: 'Request Header Fields Too Large',
        coded: kwError('HEADEND_BAD_REQUEST', 'the request headers are too large'),
      };
    default:
      return {
        status: 400,
        reason: 'Bad Request',
        coded: kwError('HEADEND_BAD_REQUEST', `malformed HTTP request (${err.code ?? 'parse'})`),
      };
  }
}

/**
 * Node answers a client it could not parse, or one too slow to send its headers, with a
 * bare 400/408 before any request object exists. This writes the same statuses with a
 * coded ErrorReply body and the X-Keywarden-Error header, directly on the socket.
 */
function onClientError(s: Serving, err: NodeJS.ErrnoException, socket: Duplex): void {
  const answer = clientErrorAnswer(err);
  const pending = (socket as Duplex & { _httpMessage?: http.ServerResponse | null })._httpMessage;
  if (!answer || !socket.writable || pending?.headersSent) {
    socket.destroy();
    return;
  }
  const { status, reason, coded } = answer;
  report(s.opts, status, coded.code, coded.message);
  const body = errorReplyBody(coded, status);
  const head =
    `HTTP/1.1 ${status} ${reason}\r\n` +
    `Content-Type: ${PROTOBUF_TYPE}\r\n` +
    `Content-Length: ${body.length}\r\n` +
    `Cache-Control: no-store\r\n` +
    `X-Keywarden-Error: ${coded.number} ${coded.code}\r\n` +
    `Connection: close\r\n\r\n`;
  socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Serves `headend` over HTTP(S); resolves once listening. */
export async function startHeadendServer(
  headend: Headend,
  options: ServerOptions = {},
): Promise<HeadendServer> {
  const opts: Options = {
    bodyLimit: 64 * 1024,
    bodyTimeoutMs: 10_000,
    headersTimeoutMs: 10_000,
    shutdownGraceMs: 10_000,
    ...options,
  };
  const s: Serving = {
    headend,
    table: routes(headend),
    opts,
    closing: false,
    inFlight: 0,
    connections: new Map(),
  };
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const socket = req.socket;
    s.inFlight++;
    s.connections.set(socket, (s.connections.get(socket) ?? 0) + 1);
    res.once('close', () => {
      s.inFlight--;
      const active = (s.connections.get(socket) ?? 1) - 1;
      if (s.connections.has(socket)) s.connections.set(socket, active);
      // Shutting down: once its last answer is out, a connection is not kept for another.
      if (s.closing && active === 0) socket.destroy();
    });
    serve(s, req, res).catch((err: unknown) => {
      // serve() answers every failure itself; this is the last line if answering failed.
      report(opts, 500, 'HEADEND_INTERNAL', String((err as Error)?.stack ?? err));
      res.destroy();
    });
  };
  const serverOptions: http.ServerOptions = {
    headersTimeout: opts.headersTimeoutMs,
    requestTimeout: opts.headersTimeoutMs + opts.bodyTimeoutMs + 5_000,
    // How often Node checks those deadlines (its default, 30 s, would let a slow client
    // hold a socket up to 30 s past them).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, opts.headersTimeoutMs / 4)),
  };
  const server: http.Server = opts.tls
    ? https.createServer({ ...serverOptions, cert: opts.tls.cert, key: opts.tls.key }, listener)
    : http.createServer(serverOptions, listener);
  server.keepAliveTimeout = 5_000;
  // Every connection is tracked, including those that never sent a request: close() ends
  // them at once instead of waiting for their headers deadline.
  const track = (socket: Duplex): void => {
    if (s.closing) return void socket.destroy();
    s.connections.set(socket, 0);
    socket.once('close', () => s.connections.delete(socket));
  };
  server.on(opts.tls ? 'secureConnection' : 'connection', track);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) =>
    onClientError(s, err, socket),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8443, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Later server errors (accept failures such as EMFILE) are logged, never thrown.
  server.on('error', (err: Error) => report(opts, 500, 'HEADEND_INTERNAL', String(err.stack)));
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  let closed: Promise<void> | undefined;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    server,
    get inFlight() {
      return s.inFlight;
    },
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        s.closing = true;
        const grace = setTimeout(() => {
          server.closeAllConnections();
          for (const socket of s.connections.keys()) socket.destroy();
        }, opts.shutdownGraceMs);
        grace.unref();
        server.close(() => {
          clearTimeout(grace);
          resolve();
        });
        // Connections without a request being answered (idle keep-alive, or silent): now.
        for (const [socket, active] of s.connections) if (active === 0) socket.destroy();
      })),
  };
}
