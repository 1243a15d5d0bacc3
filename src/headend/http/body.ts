import type { IncomingMessage } from 'node:http';
import { kwError } from '../../errors/index.js';

/** The one media type of every POST. */
export const PROTOBUF_TYPE = 'application/x-protobuf';

/** 415 unless the request says application/x-protobuf (parameters such as charset ignored). */
export function checkContentType(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== PROTOBUF_TYPE)
    throw kwError(
      'HEADEND_UNSUPPORTED_MEDIA_TYPE',
      `content type '${type || '(none)'}' is not ${PROTOBUF_TYPE}`,
    );
}

/**
 * Reads a request body of at most `limit` bytes within `timeoutMs`. A declared
 * Content-Length over the limit fails before any byte is read; a streamed body fails as soon
 * as it crosses the limit; a client that trickles bytes fails at the deadline (408), so a
 * slow client holds a socket for a bounded time only.
 */
export function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit)
    return Promise.reject(
      kwError('HEADEND_BODY_TOO_LARGE', `body of ${declared} bytes exceeds ${limit}`, { limit }),
    );
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(kwError('HEADEND_TIMEOUT', `body not received within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit)
        fail(kwError('HEADEND_BODY_TOO_LARGE', `body exceeds ${limit} bytes`, { limit }));
      else chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      if (!Number.isNaN(declared) && size !== declared)
        reject(
          kwError('HEADEND_BAD_REQUEST', `body is ${size} bytes, Content-Length said ${declared}`),
        );
      else resolve(Buffer.concat(chunks, size));
    };
    const onAbort = (): void =>
      fail(kwError('HEADEND_BAD_REQUEST', 'the client closed the request early'));
    function cleanup(): void {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('aborted', onAbort).off('error', onAbort);
    }
    req.on('data', onData).on('end', onEnd).on('aborted', onAbort).on('error', onAbort);
  });
}
