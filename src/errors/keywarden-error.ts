import { ERRORS, type ErrorCode } from './catalogue.js';

/**
 * The one error type keywarden throws at its boundaries. `code` is the symbolic name,
 * `number` the stable catalogue number; `details` carries machine-readable context
 * (offsets, box types, KIDs) and never secrets.
 */
export class KeywardenError extends Error {
  readonly code: ErrorCode;
  readonly number: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KeywardenError';
    this.code = code;
    this.number = ERRORS[code].number;
    this.details = details;
  }

  /** What the user should do about it. */
  get hint(): string {
    return ERRORS[this.code].hint;
  }

  /** One line for a terminal: number, code, message and hint, no stack. */
  toUserString(): string {
    return `error ${this.number} ${this.code}: ${this.message}. ${this.hint}`;
  }
}

/** Creates a catalogued error. The single construction point the style guide asks for. */
export function kwError(
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
  cause?: unknown,
): KeywardenError {
  return new KeywardenError(code, message, details, cause === undefined ? undefined : { cause });
}

/** True when `err` is a KeywardenError, optionally with the given code. */
export function isKeywardenError(err: unknown, code?: ErrorCode): err is KeywardenError {
  return err instanceof KeywardenError && (code === undefined || err.code === code);
}
