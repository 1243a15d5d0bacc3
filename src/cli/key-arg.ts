import { kwError } from '../errors/index.js';

/** A content key given on the command line. */
export interface KeyArg {
  /** 16 bytes, or undefined when only the key was given. */
  readonly kid?: Uint8Array;
  /** 16 bytes. */
  readonly key: Uint8Array;
}

/** Decodes 16 bytes from 32 hex digits (dashes allowed, UUID style) or base64/base64url. */
export function decode16(text: string, what: string): Uint8Array {
  const t = text.trim();
  const hex = t.replace(/-/g, '');
  if (/^[0-9a-fA-F]{32}$/.test(hex)) return Uint8Array.from(Buffer.from(hex, 'hex'));
  if (/^[A-Za-z0-9+/_-]{22}(==)?$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 16) return Uint8Array.from(b);
  }
  throw kwError('CLI_BAD_KEY', `${what} '${text}' is not 16 bytes of hex or base64`);
}

/** Parses `KID:KEY` or `KEY`. */
export function parseKeyArg(text: string): KeyArg {
  const parts = text.split(':');
  if (parts.length === 1) return { key: decode16(parts[0] ?? '', 'key') };
  if (parts.length === 2)
    return { kid: decode16(parts[0] ?? '', 'KID'), key: decode16(parts[1] ?? '', 'key') };
  throw kwError('CLI_BAD_KEY', `'${text}' is not KID:KEY`);
}

/** Commander's collector for a repeatable --key option. */
export function collectKey(text: string, previous: KeyArg[] = []): KeyArg[] {
  return [...previous, parseKeyArg(text)];
}
