import { isKeywardenError } from '../../src/errors/index.js';

/** The catalogue code `fn` throws ('no error' when it returns); an uncoded throw fails the test. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isKeywardenError(err)) return err.code;
    throw err;
  }
  return 'no error';
}

/** The catalogue code `p` rejects with ('no error' when it resolves). */
export async function asyncCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isKeywardenError(err)) return err.code;
    throw err;
  }
  return 'no error';
}
