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
import type { AccountRow } from '../store/repository.js';

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

/** Creates (or updates the limits of) an account and gives its domain a first key pair. */
export function createAccount(
  ctx: HeadendContext,
  accountId: string,
  opts: { maxDevices?: number; serviceId?: string; serviceHold?: string | null },
): AccountRow {
  const existing = ctx.store.getAccount(accountId);
  ctx.store.putAccount({
    id: accountId,
    domainId: existing?.domainId ?? `dom-${randomBytes(8).toString('hex')}`,
    serviceId: opts.serviceId ?? existing?.serviceId ?? ctx.settings.serviceId,
    maxDevices: opts.maxDevices ?? existing?.maxDevices ?? ctx.settings.defaultMaxDomainDevices,
    revision: existing?.revision ?? 0,
    domainPublicKey: existing?.domainPublicKey ?? null,
    sealedDomainKey: existing?.sealedDomainKey ?? null,
    serviceHold:
      opts.serviceHold === undefined ? (existing?.serviceHold ?? null) : opts.serviceHold,
    createdAt: existing?.createdAt ?? ctx.clock(),
  });
  if (!existing?.sealedDomainKey) rotateDomainKey(ctx, accountId);
  const row = ctx.store.getAccount(accountId);
  if (!row) throw kwError('STORE_FAILED', `account ${accountId} vanished`);
  return row;
}

/** Replaces the domain key pair and bumps the revision (a member left or was removed). */
export function rotateDomainKey(ctx: HeadendContext, accountId: string): number {
  const account = ctx.store.getAccount(accountId);
  if (!account) throw kwError('UNKNOWN_DOMAIN_ACCOUNT', `no account ${accountId}`, { accountId });
  const revision = account.revision + 1;
  const pair = generateP256KeyPair();
  const pkcs8 = Buffer.from(pkcs8Of(pair.privateKey));
  const sealed = ctx.sealer.seal('domain-key', sealId(accountId, revision), pkcs8);
  pkcs8.fill(0);
  ctx.store.setAccountKey(accountId, revision, Buffer.from(spkiOf(pair.publicKey)), sealed);
  return revision;
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
