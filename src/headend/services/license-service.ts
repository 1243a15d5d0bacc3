import { randomBytes } from 'node:crypto';
import { kwError } from '../../errors/index.js';
import { decodeMessage, encodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import type { LicenseRelease } from '../store/repository.js';
import type { DomainController } from './domain-controller.js';
import { authenticateDevice, type DeviceRequest } from './device-auth.js';
import { LicenseBuilder, type LicensePlan } from './license-builder.js';
import { isSignedRefusal, licenseErrorOf, refuse } from './refusal.js';
import { resolveRequest, type LicenseTarget } from './content-resolver.js';

const v1 = keywarden.v1;
const RequestType = v1.LicenseRequest.RequestType;
type LicenseRequest = keywarden.v1.LicenseRequest;
type Result = keywarden.v1.ILicenseResponse;

/** What an accepted RELEASE did. */
export type ReleaseOutcome = Exclude<LicenseRelease, 'unknown'>;

/**
 * The license server: authenticates the device, then answers NEW with a license for the
 * requested keys under the content's policy, RENEWAL with a fresh license of the same id,
 * and RELEASE with an acknowledgement. Refusals are signed LicenseErrors.
 */
export class LicenseService {
  private readonly builder: LicenseBuilder;

  /**
   * Called after each accepted RELEASE with what the store did: 'released', or
   * 'already-released' when the device released the license before (a retry; the answer
   * is the same confirmation).
   */
  onRelease?: (licenseId: string, deviceId: string, outcome: ReleaseOutcome) => void;

  constructor(
    private readonly ctx: HeadendContext,
    domains: DomainController,
  ) {
    this.builder = new LicenseBuilder(ctx, domains);
  }

  /** POST /v1/license. */
  async handle(bytes: Uint8Array): Promise<Uint8Array> {
    const req = await authenticateDevice(this.ctx, bytes, MessageType.LICENSE_REQUEST);
    const body = decodeMessage(v1.LicenseRequest, req.verified.payload, 'LicenseRequest');
    let result: Result;
    try {
      result = await this.dispatch(req, body);
    } catch (err) {
      if (!isSignedRefusal(err)) throw err;
      result = { error: licenseErrorOf(err) };
    }
    const payload = encodeMessage(v1.LicenseResponse, v1.LicenseResponse.create(result));
    return signMessage(MessageType.LICENSE_RESPONSE, payload, this.ctx.pki.signer('license'), {
      inReplyTo: req.verified.nonce,
      nowMs: req.now,
    });
  }

  private async dispatch(req: DeviceRequest, body: LicenseRequest): Promise<Result> {
    switch (body.type) {
      case RequestType.NEW:
        return { license: await this.issueNew(req, body) };
      case RequestType.RENEWAL:
        return { license: await this.renew(req, body) };
      case RequestType.RELEASE:
        return { released: await this.release(req, body) };
      default:
        throw refuse('HEADEND_BAD_REQUEST', `unknown license request type ${body.type}`);
    }
  }

  private async issueNew(req: DeviceRequest, body: LicenseRequest): Promise<keywarden.v1.ILicense> {
    const target = await resolveRequest(this.ctx, body);
    const plan: LicensePlan = {
      ...target,
      licenseId: target.root ? target.root.id : randomBytes(16).toString('hex'),
      requestedType: body.requestedType,
    };
    await this.refuseRevoked(plan.licenseId, target);
    return this.builder.build(req, body, plan, 0);
  }

  /**
   * A fresh license under the same id, for the keys and content of the stored one. A
   * released license is not renewed (LICENSE_RELEASED): the check here answers at once, and
   * the store's conditional update closes the race with a release on another worker.
   */
  private async renew(req: DeviceRequest, body: LicenseRequest): Promise<keywarden.v1.ILicense> {
    const row = await this.ctx.store.getLicense(body.licenseId, req.device.id);
    if (!row)
      throw refuse(
        'LICENSE_WRONG_DEVICE',
        `license ${body.licenseId} was not issued to this device`,
      );
    if (row.status === 'released')
      throw refuse('LICENSE_RELEASED', `license ${row.id} was released; acquire a new one`);
    const target = await resolveRequest(this.ctx, {
      ...body,
      keyIds: row.kids === '' ? [] : row.kids.split(',').map((k) => Buffer.from(k, 'hex')),
      contentId: row.contentId,
      psshData: new Uint8Array(0),
    });
    if (!target.policy.canRenew)
      throw kwError('SERVICE_SPECIFIC', `license ${row.id} may not be renewed`, {
        customData: 'renewal not allowed by policy',
      });
    await this.refuseRevoked(row.id, target);
    const plan: LicensePlan = { ...target, licenseId: row.id, requestedType: body.requestedType };
    return this.builder.build(req, body, plan, row.renewals + 1);
  }

  /**
   * Refuses (LICENSE_REVOKED, 6053, signed) a license whose id, any of its KIDs or its
   * content id is on the revocation list (`keywarden fleet revoke`).
   */
  private async refuseRevoked(licenseId: string, target: LicenseTarget): Promise<void> {
    const hits = await this.ctx.store.findRevocations({
      licenseIds: [licenseId],
      kids: target.keys.map((k) => k.kid),
      contentIds: target.contentId ? [target.contentId] : [],
    });
    const hit = hits[0];
    if (hit)
      throw refuse('LICENSE_REVOKED', `${hit.kind} ${hit.value} is revoked: ${hit.reason}`, {
        customData: hit.reason,
      });
  }

  /**
   * Releases a license once (compare-and-set in the store). Releasing it again is
   * idempotent: the device gets the same confirmation, so a retry after a lost answer
   * succeeds, while the store keeps the first release time and reports the repeat to
   * {@link LicenseService.onRelease}.
   */
  private async release(
    req: DeviceRequest,
    body: LicenseRequest,
  ): Promise<keywarden.v1.IReleaseConfirmation> {
    const outcome = await this.ctx.store.releaseLicense(body.licenseId, req.device.id, req.now);
    if (outcome === 'unknown')
      throw refuse(
        'LICENSE_WRONG_DEVICE',
        `license ${body.licenseId} was not issued to this device`,
      );
    this.onRelease?.(body.licenseId, req.device.id, outcome);
    return { licenseId: body.licenseId };
  }
}
