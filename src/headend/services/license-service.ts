import { randomBytes } from 'node:crypto';
import { kwError } from '../../errors/index.js';
import { decodeMessage, encodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import type { DomainController } from './domain-controller.js';
import { authenticateDevice, type DeviceRequest } from './device-auth.js';
import { LicenseBuilder, type LicensePlan } from './license-builder.js';
import { isSignedRefusal, licenseErrorOf, refuse } from './refusal.js';
import { resolveRequest } from './content-resolver.js';

const v1 = keywarden.v1;
const RequestType = v1.LicenseRequest.RequestType;
type LicenseRequest = keywarden.v1.LicenseRequest;
type Result = keywarden.v1.ILicenseResponse;

/**
 * The license server: authenticates the device, then answers NEW with a license for the
 * requested keys under the content's policy, RENEWAL with a fresh license of the same id,
 * and RELEASE with an acknowledgement. Refusals are signed LicenseErrors.
 */
export class LicenseService {
  private readonly builder: LicenseBuilder;

  constructor(
    private readonly ctx: HeadendContext,
    domains: DomainController,
  ) {
    this.builder = new LicenseBuilder(ctx, domains);
  }

  /** POST /v1/license. */
  handle(bytes: Uint8Array): Uint8Array {
    const req = authenticateDevice(this.ctx, bytes, MessageType.LICENSE_REQUEST);
    const body = decodeMessage(v1.LicenseRequest, req.verified.payload, 'LicenseRequest');
    let result: Result;
    try {
      result = this.dispatch(req, body);
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

  private dispatch(req: DeviceRequest, body: LicenseRequest): Result {
    switch (body.type) {
      case RequestType.NEW:
        return { license: this.issueNew(req, body) };
      case RequestType.RENEWAL:
        return { license: this.renew(req, body) };
      case RequestType.RELEASE:
        return { released: this.release(req, body) };
      default:
        throw refuse('HEADEND_BAD_REQUEST', `unknown license request type ${body.type}`);
    }
  }

  private issueNew(req: DeviceRequest, body: LicenseRequest): keywarden.v1.ILicense {
    const target = resolveRequest(this.ctx, body);
    const plan: LicensePlan = {
      ...target,
      licenseId: target.root ? target.root.id : randomBytes(16).toString('hex'),
      requestedType: body.requestedType,
    };
    return this.builder.build(req, body, plan, 0);
  }

  private renew(req: DeviceRequest, body: LicenseRequest): keywarden.v1.ILicense {
    const row = this.ctx.store.getLicense(body.licenseId, req.device.id);
    if (!row)
      throw refuse(
        'LICENSE_WRONG_DEVICE',
        `license ${body.licenseId} was not issued to this device`,
      );
    const target = resolveRequest(this.ctx, {
      ...body,
      keyIds: row.kids === '' ? [] : row.kids.split(',').map((k) => Buffer.from(k, 'hex')),
      contentId: row.contentId,
      psshData: new Uint8Array(0),
    });
    if (!target.policy.canRenew)
      throw kwError('SERVICE_SPECIFIC', `license ${row.id} may not be renewed`, {
        customData: 'renewal not allowed by policy',
      });
    const plan: LicensePlan = { ...target, licenseId: row.id, requestedType: body.requestedType };
    return this.builder.build(req, body, plan, row.renewals + 1);
  }

  private release(req: DeviceRequest, body: LicenseRequest): keywarden.v1.IReleaseConfirmation {
    if (!this.ctx.store.markLicenseReleased(body.licenseId, req.device.id, req.now))
      throw refuse(
        'LICENSE_WRONG_DEVICE',
        `license ${body.licenseId} was not issued to this device`,
      );
    return { licenseId: body.licenseId };
  }
}
