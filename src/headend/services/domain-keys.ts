import { randomBytes, type KeyObject } from 'node:crypto';
import {
  generateP256KeyPair,
  pkcs8Of,
  privateKeyFromPkcs8,
  publicKeyFromSpki,
  spkiOf,
} from '../../crypto/ecdsa.js';
import { kwError } from '../../errors/index.js';
import type { HeadendContext } from '../headend.js';
import type { AccountRow, DomainKeyRotationResult } from '../store/repository.js';

/** Sealing id of a domain private key: account and revision, so old revisions cannot be swapped in. */
const sealId = (accountId: string, revision: number): string => `${accountId}:${revision}`;

/** A domain's current key pair. */
export interface DomainKey {
  readonly domainId: string;
  readonly revision: number;
  readonly publicKey: KeyObject;
  readonly publicDer: Buffer;
  /** PKCS#8 DER of the private key; callers wipe it after wrapping. */
  readonly privatePkcs8: Buffer;
}

/** A freshly generated domain key pair, sealed for one revision of one account. */
export interface NewDomainKey {
  readonly publicKey: Buffer;
  readonly sealedKey: Buffer;
}

/** Generates a domain key pair and seals its private half for `accountId` at `revision`. */
export function newDomainKey(
  ctx: HeadendContext,
  accountId: string,
  revision: number,
): NewDomainKey {
  const pair = generateP256KeyPair();
  const pkcs8 = Buffer.from(pkcs8Of(pair.privateKey));
  try {
    return {
      publicKey: Buffer.from(spkiOf(pair.publicKey)),
      sealedKey: ctx.sealer.seal('domain-key', sealId(accountId, revision), pkcs8),
    };
  } finally {
    pkcs8.fill(0);
  }
}

/** How often a rotation that lost a race to another one is retried on the new revision. */
const ROTATION_ATTEMPTS = 8;

/**
 * Replaces an account's domain key pair with a new revision (a member left or was removed,
 * or a legacy account has none), removing `removeDeviceId` from the domain in the same
 * transaction. A concurrent rotation makes the store answer 'stale-revision': the key is
 * then made again for the revision after the new one. Returns the store's last answer and
 * the revision it reached.
 */
export async function rotateDomainKey(
  ctx: HeadendContext,
  accountId: string,
  removeDeviceId?: string,
): Promise<{ result: DomainKeyRotationResult; revision: number }> {
  for (let attempt = 0; attempt < ROTATION_ATTEMPTS; attempt++) {
    const account = await ctx.store.getAccount(accountId);
    if (!account) return { result: 'unknown-account', revision: 0 };
    const revision = account.revision + 1;
    const result = await ctx.store.rotateDomainKey({
      accountId,
      expectedRevision: account.revision,
      ...newDomainKey(ctx, accountId, revision),
      ...(removeDeviceId !== undefined && { removeDeviceId }),
    });
    if (result !== 'stale-revision') return { result, revision };
  }
  throw kwError('STORE_FAILED', `domain ${accountId} keeps changing; retry`, { accountId });
}

/**
 * Creates an account with its domain and a first key pair (revision 1), or changes the
 * limits and hold of an existing one. Concurrent creations agree on the first one's domain.
 */
export async function createAccount(
  ctx: HeadendContext,
  accountId: string,
  opts: { maxDevices?: number; serviceId?: string; serviceHold?: string | null },
): Promise<AccountRow> {
  const existing = await ctx.store.getAccount(accountId);
  const firstKey = existing ? undefined : newDomainKey(ctx, accountId, 1);
  const stored = await ctx.store.putAccount({
    id: accountId,
    domainId: existing?.domainId ?? `dom-${randomBytes(8).toString('hex')}`,
    serviceId: opts.serviceId ?? existing?.serviceId ?? ctx.settings.serviceId,
    maxDevices: opts.maxDevices ?? existing?.maxDevices ?? ctx.settings.defaultMaxDomainDevices,
    revision: existing?.revision ?? 1,
    domainPublicKey: existing?.domainPublicKey ?? firstKey?.publicKey ?? null,
    sealedDomainKey: existing?.sealedDomainKey ?? firstKey?.sealedKey ?? null,
    serviceHold:
      opts.serviceHold === undefined ? (existing?.serviceHold ?? null) : opts.serviceHold,
    createdAt: existing?.createdAt ?? ctx.clock(),
  });
  if (stored.sealedDomainKey) return stored;
  // An account stored without a key (by an earlier version): give it one now.
  await rotateDomainKey(ctx, accountId);
  const row = await ctx.store.getAccount(accountId);
  if (!row) throw kwError('STORE_FAILED', `account ${accountId} vanished`);
  return row;
}

/** The account's current domain key, opened. */
export function domainKeyOf(ctx: HeadendContext, account: AccountRow): DomainKey {
  if (!account.sealedDomainKey || !account.domainPublicKey)
    throw kwError('STORE_FAILED', `account ${account.id} has no domain key`);
  const pkcs8 = ctx.sealer.open(
    'domain-key',
    sealId(account.id, account.revision),
    account.sealedDomainKey,
  );
  privateKeyFromPkcs8(pkcs8); // proves the sealed blob is a P-256 key before it is handed out
  return {
    domainId: account.domainId,
    revision: account.revision,
    publicKey: publicKeyFromSpki(account.domainPublicKey),
    publicDer: account.domainPublicKey,
    privatePkcs8: pkcs8,
  };
}
