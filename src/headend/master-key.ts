import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { kwError } from '../errors/index.js';

/** Environment variable that carries the master key (32 bytes, hex or base64). */
export const MASTER_KEY_ENV = 'KEYWARDEN_MASTER_KEY';

/** Name of the generated key file inside the data dir. */
export const MASTER_KEY_FILE = 'master.key';

/** Where the master key came from (reported by `headend` at start-up, never the key). */
export type MasterKeySource = 'env' | 'file' | 'generated';

/** The head-end's master key: every secret at rest is sealed under keys derived from it. */
export interface MasterKey {
  readonly key: Buffer;
  readonly source: MasterKeySource;
}

/** Decodes 32 bytes from hex (64 digits) or base64/base64url. */
export function decodeMasterKey(text: string): Buffer {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (b.length === 32 && /^[A-Za-z0-9+/_=-]+$/.test(t)) return b;
  throw kwError('MASTER_KEY_MISSING', 'the master key is not 32 bytes of hex or base64');
}

/**
 * Loads the master key: the environment wins (an operator keeps it in a secret store);
 * otherwise DIR/master.key, which the first run creates with mode 0600. A key file that is
 * readable by others is refused, as ssh refuses such private keys.
 */
export async function loadMasterKey(
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<MasterKey> {
  const fromEnv = env[MASTER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '')
    return { key: decodeMasterKey(fromEnv), source: 'env' };
  const file = path.join(dataDir, MASTER_KEY_FILE);
  const existing = await readKeyFile(file);
  if (existing) return { key: existing, source: 'file' };
  const key = randomBytes(32);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(file, 0o600);
  return { key, source: 'generated' };
}

async function readKeyFile(file: string): Promise<Buffer | undefined> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw kwError('IO_FAILED', `cannot read ${file}: ${(err as Error).message}`, {}, err);
  }
  if ((mode & 0o077) !== 0)
    throw kwError('MASTER_KEY_MISSING', `${file} is readable by others; chmod 600 it`, { file });
  return decodeMasterKey(await readFile(file, 'utf8'));
}
