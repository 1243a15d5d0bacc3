import { decodeMessage } from '../../protocol/codec.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import { parseStoredPolicy } from '../policy/policy-args.js';
import { DEFAULT_POLICY, DEFAULT_POLICY_NAME, type PolicySpec } from '../policy/policy-spec.js';
import type { ContentKeyRow, RootRow } from '../store/repository.js';
import { refuse } from './refusal.js';

/** Most keys one license may carry: a bound against hostile requests. */
export const MAX_KEYS_PER_LICENSE = 64;

/** What a NEW or RENEWAL request resolves to. */
export interface LicenseTarget {
  readonly contentId: string;
  readonly keys: readonly ContentKeyRow[];
  readonly policyName: string;
  readonly policy: PolicySpec;
  /** Set when the request is for a subscription root license. */
  readonly root?: RootRow;
}

type RequestLike = Pick<keywarden.v1.ILicenseRequest, 'keyIds' | 'contentId' | 'psshData'>;

/** Loads a named policy; content without one gets 'default' (or the built-in defaults). */
export async function loadPolicy(
  ctx: HeadendContext,
  name: string | null,
): Promise<{ name: string; spec: PolicySpec }> {
  const wanted = name ?? DEFAULT_POLICY_NAME;
  const json = await ctx.store.getPolicy(wanted);
  if (json) return { name: wanted, spec: parseStoredPolicy(json) };
  if (name !== null) throw refuse('HEADEND_BAD_REQUEST', `policy '${wanted}' is missing`);
  return { name: DEFAULT_POLICY_NAME, spec: DEFAULT_POLICY };
}

function requestedKids(req: RequestLike): { kids: string[]; contentId: string } {
  let kids = (req.keyIds ?? []).map((k) => Buffer.from(k).toString('hex'));
  let contentId = req.contentId ?? '';
  if (kids.length === 0 && req.psshData && req.psshData.length > 0) {
    const pssh = decodeMessage(keywarden.v1.PsshData, req.psshData, 'PsshData');
    kids = pssh.keyIds.map((k) => Buffer.from(k).toString('hex'));
    contentId ||= pssh.contentId;
  }
  return { kids: [...new Set(kids)], contentId };
}

async function lookupKeys(
  ctx: HeadendContext,
  kids: string[],
  contentId: string,
): Promise<ContentKeyRow[]> {
  if (kids.length === 0) {
    const byContent = contentId ? await ctx.store.contentKeysByContentId(contentId) : [];
    if (byContent.length === 0)
      throw refuse('UNKNOWN_KEY', `no keys known for content '${contentId || '(none)'}'`);
    return byContent;
  }
  if (kids.some((k) => k.length !== 32))
    throw refuse('HEADEND_BAD_REQUEST', 'a key id is not 16 bytes');
  if (kids.length > MAX_KEYS_PER_LICENSE)
    throw refuse('HEADEND_BAD_REQUEST', `more than ${MAX_KEYS_PER_LICENSE} keys in one request`);
  const rows = await ctx.store.getContentKeys(kids);
  const found = new Set(rows.map((r) => r.kid));
  const missing = kids.filter((k) => !found.has(k));
  if (missing.length > 0)
    throw refuse('UNKNOWN_KEY', `no key for KID ${missing.join(', ')}`, {
      customData: missing.join(','),
    });
  return rows;
}

/** Resolves the keys (by KID, pssh data or content id) or the root a request names, and its policy. */
export async function resolveRequest(
  ctx: HeadendContext,
  req: RequestLike,
): Promise<LicenseTarget> {
  const { kids, contentId } = requestedKids(req);
  const root = kids.length === 0 && contentId ? await ctx.store.getRoot(contentId) : undefined;
  if (root) {
    const { name, spec } = await loadPolicy(ctx, root.policy);
    return {
      contentId,
      keys: [],
      policyName: name,
      policy: { ...spec, chain: 'root', roots: [] },
      root,
    };
  }
  const keys = await lookupKeys(ctx, kids, contentId);
  if (keys.length > MAX_KEYS_PER_LICENSE)
    throw refuse('HEADEND_BAD_REQUEST', `more than ${MAX_KEYS_PER_LICENSE} keys in one request`);
  const names = new Set(keys.map((k) => k.policy));
  if (names.size > 1)
    throw refuse(
      'HEADEND_BAD_REQUEST',
      'the requested keys have different policies; ask separately',
    );
  const { name, spec } = await loadPolicy(ctx, keys[0]?.policy ?? null);
  return {
    contentId: contentId || (keys[0]?.contentId ?? ''),
    keys,
    policyName: name,
    policy: spec,
  };
}
