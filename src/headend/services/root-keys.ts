import { createHmac, randomBytes } from 'node:crypto';
import type { HeadendContext } from '../headend.js';
import type { PolicySpec } from '../policy/policy-spec.js';
import type { RootRow } from '../store/repository.js';
import { loadPolicy } from './content-resolver.js';

/**
 * The holder every root key of a broadcast root derives for: one key per root, shared by
 * all its subscribers, so that a leaf license embedded in a live stream opens on every
 * device holding the root license. (Device ids are hex and domain holders `dom-…#rev`, so
 * this cannot collide with a real holder.)
 */
export const BROADCAST_HOLDER = 'broadcast';

/** The root-key holder for `holder` under a root whose policy is `rootPolicy`. */
export function rootKeyHolder(rootPolicy: Pick<PolicySpec, 'broadcast'>, holder: string): string {
  return rootPolicy.broadcast ? BROADCAST_HOLDER : holder;
}

/** The policy of root `root` (the one its root licenses are issued under). */
export async function rootPolicyOf(ctx: HeadendContext, root: RootRow): Promise<PolicySpec> {
  return (await loadPolicy(ctx, root.policy)).spec;
}

/**
 * Creates a subscription root (or re-assigns its policy); its secret is created once: the
 * store keeps an existing root's secret and creation time, so concurrent calls agree.
 */
export async function putRoot(
  ctx: HeadendContext,
  id: string,
  policy: string | null,
): Promise<RootRow> {
  const secret = randomBytes(32);
  try {
    return await ctx.store.putRoot({
      id,
      policy,
      sealedSecret: ctx.sealer.seal('root-secret', id, secret),
      createdAt: ctx.clock(),
    });
  } finally {
    secret.fill(0);
  }
}

/**
 * The root key of root `root` for one holder (a device id, a domain id and revision, or
 * {@link BROADCAST_HOLDER} for a broadcast root): HMAC-SHA256(root secret, holder).
 * Deriving instead of storing means every leaf issued later, by any worker, wraps to the
 * same key the device got in its root license, with no per-device row; a new domain
 * revision yields a new root key.
 */
export function rootKeyFor(ctx: HeadendContext, root: RootRow, holder: string): Buffer {
  const secret = ctx.sealer.open('root-secret', root.id, root.sealedSecret);
  try {
    return createHmac('sha256', secret).update(`keywarden root-key ${root.id} ${holder}`).digest();
  } finally {
    secret.fill(0);
  }
}
