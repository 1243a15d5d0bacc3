import { createHmac, randomBytes } from 'node:crypto';
import { kwError } from '../../errors/index.js';
import type { HeadendContext } from '../headend.js';
import type { RootRow } from '../store/repository.js';

/** Creates a subscription root (or re-assigns its policy); its secret is created once. */
export function putRoot(ctx: HeadendContext, id: string, policy: string | null): RootRow {
  const existing = ctx.store.getRoot(id);
  const secret = randomBytes(32);
  ctx.store.putRoot({
    id,
    policy,
    sealedSecret: existing?.sealedSecret ?? ctx.sealer.seal('root-secret', id, secret),
    createdAt: existing?.createdAt ?? ctx.clock(),
  });
  secret.fill(0);
  const row = ctx.store.getRoot(id);
  if (!row) throw kwError('STORE_FAILED', `root ${id} vanished`);
  return row;
}

/**
 * The root key of root `root` for one holder (a device id, or a domain id and revision):
 * HMAC-SHA256(root secret, holder). Deriving instead of storing means every leaf issued
 * later, by any worker, wraps to the same key the device got in its root license, with no
 * per-device row; a new domain revision yields a new root key.
 */
export function rootKeyFor(ctx: HeadendContext, root: RootRow, holder: string): Buffer {
  const secret = ctx.sealer.open('root-secret', root.id, root.sealedSecret);
  try {
    return createHmac('sha256', secret).update(`keywarden root-key ${root.id} ${holder}`).digest();
  } finally {
    secret.fill(0);
  }
}
