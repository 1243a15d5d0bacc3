import { randomBytes } from 'node:crypto';
import { aeadWrap } from '../../crypto/aead.js';
import { kwError } from '../../errors/index.js';
import { encodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import { leafKeyContext } from '../../protocol/key-wrap.js';
import type { HeadendContext } from '../headend.js';
import { policyToProto } from '../policy/policy-proto.js';
import type { PolicySpec } from '../policy/policy-spec.js';
import type { ContentKeyRow, RootRow } from '../store/repository.js';
import { loadPolicy, MAX_KEYS_PER_LICENSE } from './content-resolver.js';
import { expiryOf } from './license-builder.js';
import { BROADCAST_HOLDER, rootKeyFor, rootPolicyOf } from './root-keys.js';

const v1 = keywarden.v1;

/** What to put in an embedded leaf license. */
export interface EmbeddedLicenseRequest {
  /** KIDs (16 bytes each) whose keys the license carries; registered in the content key store. */
  readonly kids: readonly Uint8Array[];
  /** Broadcast roots whose root key wraps each content key (any one suffices on the device). */
  readonly roots: readonly string[];
  /** Content id (channel) the license names; default: the first key's content id. */
  readonly contentId?: string;
  /**
   * Policy for the license's rights and validity; default: the keys' assigned policy (or
   * 'default'). Its chain role is replaced: an embedded license is always a leaf of `roots`.
   */
  readonly policy?: string;
}

/** An issued embedded license. */
export interface EmbeddedLicense {
  /** The serialized SignedMessage (type EMBEDDED_LICENSE): what goes into PsshData.embedded_license. */
  readonly bytes: Uint8Array;
  readonly licenseId: string;
  /** KIDs carried, lower-case hex. */
  readonly kids: readonly string[];
  readonly roots: readonly string[];
  readonly issuedAtMs: number;
  /** Absolute expiry (0 = none). */
  readonly expiresAtMs: number;
}

async function broadcastRoot(ctx: HeadendContext, id: string): Promise<RootRow> {
  const root = await ctx.store.getRoot(id);
  if (!root)
    throw kwError('HEADEND_BAD_POLICY', `no root '${id}': create it with 'headend root ${id}'`, {
      root: id,
    });
  if (!(await rootPolicyOf(ctx, root)).broadcast)
    throw kwError(
      'HEADEND_BAD_POLICY',
      `root '${id}' is not a broadcast root: give it a policy set with --chain root --broadcast`,
      { root: id },
    );
  return root;
}

async function contentKeys(
  ctx: HeadendContext,
  kids: readonly Uint8Array[],
): Promise<ContentKeyRow[]> {
  if (kids.length === 0) throw kwError('CLI_USAGE', 'an embedded license carries at least one KID');
  if (kids.length > MAX_KEYS_PER_LICENSE)
    throw kwError('CLI_USAGE', `an embedded license carries at most ${MAX_KEYS_PER_LICENSE} keys`);
  const rows: ContentKeyRow[] = [];
  for (const kid of kids) {
    if (kid.length !== 16) throw kwError('CLI_BAD_KEY', 'a KID is 16 bytes');
    const hex = Buffer.from(kid).toString('hex');
    const row = await ctx.store.getContentKey(hex);
    if (!row) throw kwError('UNKNOWN_KEY', `no content key with KID ${hex}`, { kid: hex });
    if (!rows.some((r) => r.kid === row.kid)) rows.push(row);
  }
  return rows;
}

/** The leaf's rights: the named policy, or the keys' one, as a leaf of `roots`. */
async function leafPolicy(
  ctx: HeadendContext,
  req: EmbeddedLicenseRequest,
  rows: readonly ContentKeyRow[],
): Promise<{ name: string; spec: PolicySpec }> {
  const names = new Set(rows.map((r) => r.policy));
  if (req.policy === undefined && names.size > 1)
    throw kwError('CLI_USAGE', 'the keys have different policies; name one with --policy');
  const wanted = req.policy ?? rows[0]?.policy ?? null;
  if (wanted !== null && (await ctx.store.getPolicy(wanted)) === undefined)
    throw kwError('UNKNOWN_POLICY', `no policy '${wanted}'`);
  const { name, spec } = await loadPolicy(ctx, wanted);
  return { name, spec: { ...spec, chain: 'leaf', roots: [...req.roots], broadcast: false } };
}

/**
 * Issues an embedded leaf license: a License with no device id whose content keys are
 * wrapped (KEY_WRAPPING_ROOT, one RootWrap per root) under the shared root key of each
 * broadcast root, signed by the license server as a SignedMessage of type
 * EMBEDDED_LICENSE. Packaged into a live stream's pssh, it opens on every device that holds
 * a valid root license of one of `roots` (docs/key-rotation.md). Errors: HEADEND_BAD_POLICY
 * (unknown or non-broadcast root), UNKNOWN_KEY, UNKNOWN_POLICY, CLI_USAGE, CLI_BAD_KEY.
 */
export async function issueEmbeddedLicense(
  ctx: HeadendContext,
  req: EmbeddedLicenseRequest,
): Promise<EmbeddedLicense> {
  const rootIds = [...new Set(req.roots)];
  if (rootIds.length === 0)
    throw kwError('CLI_USAGE', 'an embedded license names at least one broadcast root');
  const roots: RootRow[] = [];
  for (const id of rootIds) roots.push(await broadcastRoot(ctx, id));
  const rows = await contentKeys(ctx, req.kids);
  const { spec } = await leafPolicy(ctx, { ...req, roots: rootIds }, rows);
  const now = ctx.clock();
  const licenseId = `embedded-${randomBytes(12).toString('hex')}`;
  const rootKeys = roots.map((root) => ({
    id: root.id,
    key: rootKeyFor(ctx, root, BROADCAST_HOLDER),
  }));
  let keys: keywarden.v1.IKeyContainer[];
  try {
    keys = rows.map((row) => {
      const kid = Buffer.from(row.kid, 'hex');
      const key = ctx.sealer.open('content-key', row.kid, row.sealedKey);
      try {
        return {
          kid,
          trackType: row.trackType,
          wrapping: v1.KeyWrapping.KEY_WRAPPING_ROOT,
          rootWraps: rootKeys.map((r) => ({
            rootLicenseId: r.id,
            wrappedKey: aeadWrap(r.key, key, leafKeyContext(r.id, kid)),
          })),
        };
      } finally {
        key.fill(0);
      }
    });
  } finally {
    for (const r of rootKeys) r.key.fill(0);
  }
  const expiresAtMs = expiryOf(spec, now);
  const license: keywarden.v1.ILicense = {
    id: licenseId,
    type: v1.License.LicenseType.STREAMING,
    policy: policyToProto(spec, { chain: { isRoot: false, roots: rootIds } }),
    keys,
    contentId: req.contentId ?? rows[0]?.contentId ?? '',
    deviceId: '',
    serverTimeMs: now,
    issuedAtMs: now,
    expiresAtMs,
    customData: '',
  };
  const payload = encodeMessage(v1.License, v1.License.create(license));
  const bytes = signMessage(MessageType.EMBEDDED_LICENSE, payload, ctx.pki.signer('license'), {
    nowMs: now,
  });
  return {
    bytes,
    licenseId,
    kids: rows.map((r) => r.kid),
    roots: rootIds,
    issuedAtMs: now,
    expiresAtMs,
  };
}
