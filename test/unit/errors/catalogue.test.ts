import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS, type ErrorCode, KeywardenError, kwError } from '../../../src/errors/index.js';

const doc = readFileSync(path.resolve(import.meta.dirname, '../../../docs/errors.md'), 'utf8');

describe('error catalogue', () => {
  it('gives every error a unique number', () => {
    const numbers = Object.values(ERRORS).map((e) => e.number);
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it.each(Object.entries(ERRORS))('documents %s in docs/errors.md', (code, spec) => {
    expect(doc).toMatch(new RegExp(`\\|\\s*${spec.number}\\s*\\|\\s*\`${code}\``));
  });

  it('builds coded errors with a user string and no stack in it', () => {
    const err = kwError('MEDIA_TRUNCATED', 'moof ends early', { offset: 12 });
    expect(err).toBeInstanceOf(KeywardenError);
    expect(err.number).toBe(ERRORS.MEDIA_TRUNCATED.number);
    expect(err.details).toEqual({ offset: 12 });
    const line = err.toUserString();
    expect(line).toContain(
      `error ${ERRORS.MEDIA_TRUNCATED.number} MEDIA_TRUNCATED: moof ends early`,
    );
    expect(line).not.toContain('\n');
  });

  it('keeps numbers in their documented ranges', () => {
    for (const [code, spec] of Object.entries(ERRORS) as [ErrorCode, { number: number }][]) {
      const range = code.startsWith('MEDIA_')
        ? [7000, 7099]
        : code.startsWith('NATIVE_')
          ? [7100, 7199]
          : null;
      if (range) expect(spec.number, code).toBeGreaterThanOrEqual(range[0]!);
      if (range) expect(spec.number, code).toBeLessThanOrEqual(range[1]!);
    }
  });
});
