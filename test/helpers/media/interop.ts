import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** One entry of ../shared/interop/manifest.json. */
export interface InteropFile {
  readonly file: string;
  readonly scheme: string;
  readonly key: string;
  readonly reference: string;
}

/** The repository root (this file is test/helpers/media/interop.ts). */
export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..', '..');

/** The shared interop directory next to the repository. */
export const INTEROP_DIR = path.resolve(REPO_ROOT, '..', 'shared', 'interop');

/** The manifest, or undefined (with a visible message) when the directory is absent. */
export function interopManifest(): InteropFile[] | undefined {
  const manifest = path.join(INTEROP_DIR, 'manifest.json');
  if (!existsSync(manifest)) {
    // CI clones beside shared/, so there a missing interop set is a failure, not a skip.
    if (process.env.KEYWARDEN_REQUIRE_TOOLS === '1')
      throw new Error(`interop files missing at ${INTEROP_DIR}`);
    console.warn(`SKIP: no interop files at ${INTEROP_DIR}; interop tests are skipped`);
    return undefined;
  }
  return JSON.parse(readFileSync(manifest, 'utf8')) as InteropFile[];
}

/** Path of an interop file. */
export function interopPath(name: string): string {
  return path.join(INTEROP_DIR, name);
}
