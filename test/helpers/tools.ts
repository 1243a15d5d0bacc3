import { spawnSync } from 'node:child_process';

const seen = new Map<string, boolean>();

/**
 * True when the external tool runs. Locally a missing tool makes dependent tests skip
 * with a visible message; in CI (KEYWARDEN_REQUIRE_TOOLS=1) it is a hard failure, so CI
 * never passes by skipping.
 */
export function hasTool(name: string, versionArgs: string[] = ['-version']): boolean {
  const known = seen.get(name);
  if (known !== undefined) return known;
  const ok = spawnSync(name, versionArgs, { stdio: 'ignore' }).status === 0;
  seen.set(name, ok);
  if (!ok) {
    if (process.env.KEYWARDEN_REQUIRE_TOOLS === '1') {
      throw new Error(`${name} is required (KEYWARDEN_REQUIRE_TOOLS=1) but is not installed`);
    }
    console.warn(`SKIP: ${name} is not installed; the tests that need it are skipped`);
  }
  return ok;
}
