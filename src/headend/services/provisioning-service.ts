import { kwError } from '../../errors/index.js';
import { decodeMessage, encodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage, verifyMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import { sha256Hex } from '../pki/x509-issuer.js';
import { compareVersions, isSemver, type HeadendSettings } from '../settings.js';
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

  /**
   * Answers one request (a SignedMessage); throws only for unauthenticated input. The
   * nonce is checked against the shared replay window once the proof of possession
   * verified, so unsigned junk never reaches the database.
   */
  async handle(bytes: Uint8Array): Promise<Uint8Array> {
    const now = this.ctx.clock();
    const verified = verifyMessage(bytes, MessageType.PROVISIONING_REQUEST, {
      nowMs: now,
      maxSkewMs: this.ctx.settings.maxSkewMs,
      proofOfPossession: (p) =>
        decodeMessage(v1.ProvisioningRequest, p, 'ProvisioningRequest').devicePublicKey,
    });
    await this.ctx.nonces.checkAndRemember(verified.nonce, verified.timestamp, now);
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

  /** The request's own checks (digest, version floor); returns the hardware id (hex). */
  private checkRequest(req: ProvisioningRequest, s: HeadendSettings): string {
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
    return Buffer.from(req.hardwareIdDigest).toString('hex');
  }

  /**
   * Version floor and rate limit (server flags, read from the database on each request so
   * that every worker applies the operator's latest values), revocation, then the
   * certificate; the device is recorded only if nobody revoked it meanwhile.
   */
  private async grant(
    req: ProvisioningRequest,
    now: number,
  ): Promise<keywarden.v1.IProvisioningGrant> {
    const s = await this.ctx.currentSettings();
    const hardwareId = this.checkRequest(req, s);
    const deviceId = deviceIdOf(req.devicePublicKey);
    const admission = await this.ctx.store.admitProvisioning({
      hardwareId,
      deviceId,
      at: now,
      windowStart: now - s.provisioningWindowMs,
    });
    if (admission.status === 'hardware-revoked')
      throw refuse('DEVICE_REVOKED', 'this hardware belongs to a revoked device');
    if (admission.attempts > s.provisioningLimit)
      throw kwError(
        'HEADEND_RATE_LIMITED',
        `${admission.attempts} provisioning requests in the window`,
        { retryAfterMs: s.provisioningWindowMs },
      );
    if (admission.known?.status === 'revoked')
      throw refuse('DEVICE_REVOKED', `device ${deviceId} is revoked`);
    const certDer = await this.ctx.pki.issueDeviceCertificate(
      req.devicePublicKey,
      deviceId,
      new Date(now - 3600_000),
      new Date(now + s.deviceCertValidityMs),
    );
    const recorded = await this.ctx.store.recordProvisioning({
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
      provisionedAt: admission.known?.provisionedAt ?? now,
      revokedAt: null,
      revokeReason: null,
    });
    if (recorded === 'revoked')
      throw refuse('DEVICE_REVOKED', `device ${deviceId} was revoked during provisioning`);
    return {
      deviceCertificate: certDer,
      certificateChain: [this.ctx.pki.identity('provisioning').certDer],
      deviceId,
      serverTimeMs: now,
    };
  }
}
