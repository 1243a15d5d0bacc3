import { kwError } from '../errors/index.js';

// The head-end and its dependencies (better-sqlite3, @peculiar/x509, aedes) are optional for
// a device install: they load here, inside actions, and a missing module is a coded error.
export type HeadendModule = typeof import('../headend/index.js');
export type HeadendInstance = Awaited<ReturnType<HeadendModule['Headend']['open']>>;

/** Loads the head-end; HEADEND_DEPENDENCY_MISSING when its optional packages are absent. */
export async function loadHeadend(): Promise<HeadendModule> {
  try {
    return await import('../headend/index.js');
  } catch (err) {
    throw kwError(
      'HEADEND_DEPENDENCY_MISSING',
      `the head-end cannot load: ${(err as Error).message}`,
      {},
      err,
    );
  }
}

/** Opens the data dir, runs `fn` on it, and closes it. */
export async function withHeadend<T>(
  dataDir: string,
  fn: (h: HeadendInstance) => T | Promise<T>,
): Promise<T> {
  const { Headend } = await loadHeadend();
  const headend = await Headend.open({ dataDir });
  try {
    return await fn(headend);
  } finally {
    await headend.close();
  }
}

/** Prints `value` as JSON (`--json`) or as the human text `human()` makes. */
export function printResult(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}
