import type { KeyObject } from 'node:crypto';
import { aeadWrap } from '../../crypto/aead.js';
import { eciesWrap } from '../../crypto/ecies.js';
import { kwError } from '../../errors/index.js';
import { keywarden } from '../../protocol/generated/proto.js';
import { contentKeyContext, leafKeyContext, rootKeyContext } from '../../protocol/key-wrap.js';
import type { HeadendContext } from '../headend.js';
import { policyToProto } from '../policy/policy-proto.js';
import type { PolicySpec } from '../policy/policy-spec.js';
import type { AccountRow, ContentKeyRow } from '../store/repository.js';
import type { LicenseTarget } from './content-resolver.js';
import type { DeviceRequest } from './device-auth.js';
import type { DomainController } from './domain-controller.js';
import { domainKeyOf } from './domain-keys.js';
import { refuse } from './refusal.js';
import { rootKeyFor, rootKeyHolder, rootPolicyOf } from './root-keys.js';

const v1 = keywarden.v1;
const Wrapping = v1.KeyWrapping;
type LicenseRequest = keywarden.v1.LicenseRequest;

/** A resolved request plus the license id to issue under. */
export interface LicensePlan extends LicenseTarget {
  readonly licenseId: string;
  readonly requestedType: keywarden.v1.License.LicenseType;
}

/** Who the keys are wrapped to. */
interface Holder {
  /** Root-key derivation input: the device id, or the domain id and revision. */
  readonly id: string;
  readonly publicKey: KeyObject;
  readonly wrapping: keywarden.v1.KeyWrapping;
  readonly domain?: { readonly id: string; readonly revision: number };
}

/** `custom_data` may name the account as JSON `{"account":"ID"}` or as `account=ID`. */
export function accountHint(customData: string): string {
  // Most requests carry none; JSON.parse('') would throw (and build a stack trace) each time.
  if (customData === '') return '';
  const eq = /^account=(\S+)$/.exec(customData.trim());
  if (eq) return eq[1] ?? '';
  try {
    const parsed = JSON.parse(customData) as unknown;
    if (parsed && typeof parsed === 'object' && 'account' in parsed) {
      const account = (parsed as { account: unknown }).account;
      return typeof account === 'string' ? account : '';
    }
  } catch {
    // Custom data is the application's own; anything but the two forms above carries no hint.
    return '';
  }
  return '';
}

/** The policy's license custom data, with `{contentId}` and `{kid}` (the first KID) filled in. */
function licenseCustomData(p: PolicySpec, plan: LicensePlan): string {
  const template = p.licenseCustomData ?? '';
  if (!template) return '';
  const kid = plan.keys[0]?.kid ?? '';
  return template.replaceAll('{contentId}', plan.contentId).replaceAll('{kid}', kid);
}

/** Builds the License of a plan: business rules, key wrapping, bookkeeping. */
export class LicenseBuilder {
  constructor(
    private readonly ctx: HeadendContext,
    private readonly domains: DomainController,
  ) {}

  async build(
    req: DeviceRequest,
    body: LicenseRequest,
    plan: LicensePlan,
    renewals: number,
  ): Promise<keywarden.v1.ILicense> {
    const p = plan.policy;
    const member = await this.ctx.store.accountOfDevice(req.device.id);
    const hinted = accountHint(body.customData);
    this.checkService(p, member ?? (hinted ? await this.ctx.store.getAccount(hinted) : undefined));
    this.checkEntitlement(req, body, p);
    const holder = await this.holderOf(req, body, p, member, hinted);
    const issuedAt = req.now;
    const expiresAt = expiryOf(p, issuedAt);
    const license: keywarden.v1.ILicense = {
      id: plan.licenseId,
      type:
        p.canPersist && plan.requestedType !== v1.License.LicenseType.STREAMING
          ? v1.License.LicenseType.OFFLINE
          : v1.License.LicenseType.STREAMING,
      policy: policyToProto(p, {
        ...(holder.domain && { domain: holder.domain }),
        ...(p.chain !== 'none' && { chain: { isRoot: p.chain === 'root', roots: p.roots } }),
      }),
      keys: await Promise.all(plan.keys.map((k) => this.keyContainer(k, plan, holder))),
      contentId: plan.contentId,
      deviceId: req.device.id,
      serverTimeMs: req.now,
      issuedAtMs: issuedAt,
      expiresAtMs: expiresAt,
      customData: licenseCustomData(p, plan),
    };
    if (plan.root) {
      const rootKey = rootKeyFor(this.ctx, plan.root, rootKeyHolder(p, holder.id));
      license.rootKey = {
        wrapping: holder.wrapping,
        wrappedKey: eciesWrap(holder.publicKey, rootKey, rootKeyContext(plan.root.id)),
      };
      rootKey.fill(0);
    }
    const recorded = await this.ctx.store.recordLicense({
      id: plan.licenseId,
      deviceId: req.device.id,
      contentId: plan.contentId,
      kids: plan.keys.map((k) => k.kid).join(','),
      policy: plan.policyName,
      kind: plan.root ? 'root' : p.chain === 'leaf' ? 'leaf' : 'simple',
      issuedAt,
      expiresAt,
      status: 'active',
      renewals,
    });
    if (!recorded)
      throw refuse('LICENSE_RELEASED', `license ${plan.licenseId} was released; acquire a new one`);
    return license;
  }

  /** 6007 answers: a policy that carries a service error, or an account on hold ("pay your bill"). */
  private checkService(p: PolicySpec, account: AccountRow | undefined): void {
    if (p.serviceError)
      throw kwError('SERVICE_SPECIFIC', p.serviceError.message, {
        customData: p.serviceError.customData,
      });
    if (account?.serviceHold)
      throw kwError('SERVICE_SPECIFIC', `account ${account.id} is on hold`, {
        customData: account.serviceHold,
        accountId: account.id,
      });
  }

  private checkEntitlement(req: DeviceRequest, body: LicenseRequest, p: PolicySpec): void {
    const level = body.clientInfo?.securityLevel || req.device.securityLevel;
    if (p.minSecurityLevel > 0 && level < p.minSecurityLevel)
      throw refuse(
        'DEVICE_NOT_ENTITLED',
        `security level ${level} is below the policy's ${p.minSecurityLevel}`,
      );
    const app = body.clientInfo?.applicationId ?? '';
    if (p.allowedApplications.length > 0 && !p.allowedApplications.includes(app))
      throw refuse('DEVICE_NOT_ENTITLED', `application '${app}' may not use this content`);
  }

  private async holderOf(
    req: DeviceRequest,
    body: LicenseRequest,
    p: PolicySpec,
    member: AccountRow | undefined,
    hinted: string,
  ): Promise<Holder> {
    if (!p.domainBound)
      return {
        id: req.device.id,
        publicKey: req.publicKey,
        wrapping: Wrapping.KEY_WRAPPING_DEVICE,
      };
    const hintAccount = hinted ? await this.ctx.store.getAccount(hinted) : undefined;
    if (!member)
      throw refuse(
        'NOT_A_DOMAIN_MEMBER',
        'this content is domain-bound: join the domain first',
        this.domains.domainHint(hintAccount, hinted),
      );
    if (body.domainRevision !== 0 && body.domainRevision < member.revision)
      throw refuse(
        'NOT_A_DOMAIN_MEMBER',
        `domain key revision ${body.domainRevision} is outdated: rejoin (renew domain)`,
        this.domains.domainHint(member),
      );
    const key = domainKeyOf(this.ctx, member);
    key.privatePkcs8.fill(0);
    return {
      id: `${key.domainId}#${key.revision}`,
      publicKey: key.publicKey,
      wrapping: Wrapping.KEY_WRAPPING_DOMAIN,
      domain: { id: key.domainId, revision: key.revision },
    };
  }

  private async keyContainer(
    row: ContentKeyRow,
    plan: LicensePlan,
    holder: Holder,
  ): Promise<keywarden.v1.IKeyContainer> {
    const kid = Buffer.from(row.kid, 'hex');
    const key = this.ctx.sealer.open('content-key', row.kid, row.sealedKey);
    try {
      if (plan.policy.chain !== 'leaf')
        return {
          kid,
          trackType: row.trackType,
          wrapping: holder.wrapping,
          wrappedKey: eciesWrap(holder.publicKey, key, contentKeyContext(plan.licenseId, kid)),
        };
      return {
        kid,
        trackType: row.trackType,
        wrapping: Wrapping.KEY_WRAPPING_ROOT,
        rootWraps: await Promise.all(
          plan.policy.roots.map((rootId) => this.rootWrap(rootId, kid, key, holder)),
        ),
      };
    } finally {
      key.fill(0);
    }
  }

  private async rootWrap(
    rootId: string,
    kid: Buffer,
    key: Buffer,
    holder: Holder,
  ): Promise<keywarden.v1.IRootWrap> {
    const root = await this.ctx.store.getRoot(rootId);
    if (!root) throw kwError('HEADEND_INTERNAL', `leaf policy names unknown root '${rootId}'`);
    // A broadcast root wraps under its one shared key (root-keys.ts, BROADCAST_HOLDER).
    const rootKey = rootKeyFor(
      this.ctx,
      root,
      rootKeyHolder(await rootPolicyOf(this.ctx, root), holder.id),
    );
    try {
      return {
        rootLicenseId: rootId,
        wrappedKey: aeadWrap(rootKey, key, leafKeyContext(rootId, kid)),
      };
    } finally {
      rootKey.fill(0);
    }
  }
}

/** Absolute expiry: the earliest of the license and rental windows (0 = none). */
export function expiryOf(p: PolicySpec, issuedAt: number): number {
  const windows = [p.licenseDuration, p.rentalDuration].filter((d) => d > 0);
  return windows.length === 0 ? 0 : issuedAt + Math.min(...windows) * 1000;
}
