import { kwError } from '../errors/index.js';

/** Largest protocol message accepted by any decoder (1 MiB): a bound against hostile input. */
export const MAX_MESSAGE_BYTES = 1 << 20;

/** The static-module shape protobufjs generates for every message class. */
export interface MessageClass<T> {
  decode(reader: Uint8Array): T;
  encode(message: NoInfer<T>): { finish(): Uint8Array };
  verify(message: Record<string, unknown>): string | null;
}

/**
 * Decodes `bytes` as message `cls`. Truncated, oversized, random or otherwise malformed
 * input is a DECODE_FAILED error, never an exception of another kind.
 */
export function decodeMessage<T>(cls: MessageClass<T>, bytes: Uint8Array, what: string): T {
  if (!(bytes instanceof Uint8Array)) throw kwError('DECODE_FAILED', `${what}: not bytes`);
  if (bytes.length > MAX_MESSAGE_BYTES) {
    throw kwError('DECODE_FAILED', `${what}: ${bytes.length} bytes exceeds the limit`, {
      limit: MAX_MESSAGE_BYTES,
    });
  }
  let msg: T;
  try {
    msg = cls.decode(bytes);
  } catch (err) {
    throw kwError('DECODE_FAILED', `${what}: ${(err as Error).message}`, {}, err);
  }
  const problem = cls.verify(msg as unknown as Record<string, unknown>);
  if (problem) throw kwError('DECODE_FAILED', `${what}: ${problem}`);
  return msg;
}

/** Encodes a message to bytes. */
export function encodeMessage<T>(cls: MessageClass<T>, message: T): Uint8Array {
  return cls.encode(message).finish();
}
