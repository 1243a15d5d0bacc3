import { kwError } from '../../errors/index.js';
import { decodeMessage, encodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage, verifyMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import { sha256Hex } from '../pki/x509-issuer.js';
import { compareVersions, isSemver } from '../settings.js';
import { isSignedRefusal, refuse } from './refusal.js';

const v1 = keywarden.v1;
type ProvisioningRequest = keywarden.v1.ProvisioningRequest;

/** Device ids are the first 16 bytes of SHA-256(SPKI), hex: stable for a key, unguessable. */
export function deviceIdOf(spki: Uint8Array): string {
  return sha256Hex(spki).slice(0, 32);
}

/**
 * The provisioning authority: checks a device's self-signed request (proof of possession
 * of the key it wants certified), applies the version floor, the revocation state and the
 * per-hardware rate limit, issues the device certificate and records the device.
 */
export class ProvisioningService {
  constructor(private readonly ctx: HeadendContext) {}

  /** Answers one request (a SignedMessage); throws only for unauthenticated input. */
  async handle(bytes: Uint8Array): Promise<Uint8Array> {
    const now = this.ctx.clock();
    const verified = verifyMessage(bytes, MessageType.PROVISIONING_REQUEST, {
      nowMs: now,
      maxSkewMs: this.ctx.settings.maxSkewMs,
      replayGuard: this.ctx.nonces,
      proofOfPossession: (p) =>
        decodeMessage(v1.ProvisioningRequest, p, 'ProvisioningRequest').devicePublicKey,
    });
    const request = decodeMessage(v1.ProvisioningRequest, verified.payload, 'ProvisioningRequest');
    let response: keywarden.v1.IProvisioningResponse;
    try {
      response = { grant: await this.grant(request, now) };
    } catch (err) {
      if (!isSignedRefusal(err)) throw err;
      response = { error: this.errorOf(err.number, err.message, err.details) };
    }
    const payload = encodeMessage(
      v1.ProvisioningResponse,
      v1.ProvisioningResponse.create(response),
    );
    return signMessage(
      MessageType.PROVISIONING_RESPONSE,
      payload,
      this.ctx.pki.signer('provisioning'),
      {
        inReplyTo: verified.nonce,
        nowMs: now,
      },
    );
  }

  private errorOf(
    code: number,
    message: string,
    details: Readonly<Record<string, unknown>>,
  ): keywarden.v1.IProvisioningError {
    return {
      code,
      message,
      minAgentVersion: typeof details.minAgentVersion === 'string' ? details.minAgentVersion : '',
      retryAfterMs: typeof details.retryAfterMs === 'number' ? details.retryAfterMs : 0,
      updateUrl: typeof details.updateUrl === 'string' ? details.updateUrl : '',
    };
  }

  private checkRequest(req: ProvisioningRequest, now: number): string {
    const s = this.ctx.settings;
    if (req.hardwareIdDigest.length !== 32)
      throw refuse('HEADEND_BAD_REQUEST', 'hardware_id_digest must be a 32-byte SHA-256 digest');
    if (!isSemver(req.agentVersion) || compareVersions(req.agentVersion, s.minAgentVersion) < 0)
      throw kwError(
        'AGENT_VERSION_TOO_OLD',
        `agent ${req.agentVersion || '(none)'} is below ${s.minAgentVersion}`,
        {
          minAgentVersion: s.minAgentVersion,
          updateUrl: s.updateUrl,
        },
      );
    const hardwareId = Buffer.from(req.hardwareIdDigest).toString('hex');
    const store = this.ctx.store;
    if (store.isHardwareRevoked(hardwareId))
      throw refuse('DEVICE_REVOKED', 'this hardware belongs to a revoked device');
    const count = store.countProvisioning(hardwareId, now, now - s.provisioningWindowMs);
    if (count > s.provisioningLimit)
      throw kwError('HEADEND_RATE_LIMITED', `${count} provisioning requests in the window`, {
        retryAfterMs: s.provisioningWindowMs,
      });
    return hardwareId;
  }

  private async grant(
    req: ProvisioningRequest,
    now: number,
  ): Promise<keywarden.v1.IProvisioningGrant> {
    const hardwareId = this.checkRequest(req, now);
    const deviceId = deviceIdOf(req.devicePublicKey);
    const known = this.ctx.store.getDevice(deviceId);
    if (known?.status === 'revoked')
      throw refuse('DEVICE_REVOKED', `device ${deviceId} is revoked`);
    const certDer = await this.ctx.pki.issueDeviceCertificate(
      req.devicePublicKey,
      deviceId,
      new Date(now - 3600_000),
      new Date(now + this.ctx.settings.deviceCertValidityMs),
    );
    this.ctx.store.upsertDevice({
      id: deviceId,
      hardwareId,
      publicKey: Buffer.from(req.devicePublicKey),
      certDer,
      serial: '',
      agentVersion: req.agentVersion,
      securityLevel: req.attestation?.securityLevel ?? 0,
      platform: req.attestation?.platform ?? '',
      model: req.attestation?.model ?? '',
      status: 'active',
      provisionedAt: known?.provisionedAt ?? now,
      revokedAt: null,
      revokeReason: null,
    });
    return {
      deviceCertificate: certDer,
      certificateChain: [this.ctx.pki.identity('provisioning').certDer],
      deviceId,
      serverTimeMs: now,
    };
  }
}
