import { randomBytes, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { parseCertificate, verifyCertificateChain } from '../crypto/cert-chain.js';
import { spkiOf } from '../crypto/ecdsa.js';
import type { HardwareIdentity } from '../crypto/hardware-identity.js';
import type { DeviceCertificate, KeyVault } from '../crypto/key-vault.js';
import type { NonceRegistry } from '../crypto/replay-guard.js';
import { isKeywardenError, kwError, type KeywardenError } from '../errors/index.js';
import { decodeMessage, encodeMessage } from '../protocol/codec.js';
import { MessageType, NONCE_BYTES, signMessageWith, verifyMessage } from '../protocol/envelope.js';
import { keywarden } from '../protocol/generated/proto.js';
import type { DeviceCredentials } from './device-credentials.js';
import { errorFromWire, httpRefusalCode } from './wire-errors.js';
import { httpTransport, type ProtocolTransport } from './protocol-transport.js';

const v1 = keywarden.v1;
type Reason = keywarden.v1.ProvisioningReason;
const Reason = v1.ProvisioningReason;

/** Options of an {@link Individualizer}. */
export interface IndividualizerOptions {
  /** The provisioning authority's URL. */
  readonly provisioningUrl: string;
  /** Where the device key and certificate live. */
  readonly vault: KeyVault;
  /** The current hardware identity. */
  readonly identity: HardwareIdentity;
  /** The operator root (DER or parsed) the authority's chain must lead to. */
  readonly trustedRoot: Uint8Array | X509Certificate;
  /** This agent's version (semver). */
  readonly agentVersion: string;
  /** Platform claims sent with the request. */
  readonly attestation?: keywarden.v1.IAttestation;
  /** HTTP by default. */
  readonly transport?: ProtocolTransport;
  /** Attempts per individualization before 6009 (default 3). */
  readonly maxAttempts?: number;
  /** Wait between attempts, ms (default 1000 × attempt). */
  readonly retryDelayMs?: (attempt: number) => number;
  /** Clock (default Date.now). */
  readonly now?: () => number;
  /** Replay window for the authority's answers. */
  readonly replayGuard?: NonceRegistry;
}

/** Events of an {@link Individualizer}. */
export interface IndividualizerEvents {
  individualizing: [{ reason: string; attempt: number }];
  individualized: [{ deviceId: string; reason: string }];
  'hardware-changed': [KeywardenError];
}

/** Errors a retry cannot fix: the server said no, or the device must change first. */
const FINAL_CODES = new Set([
  'AGENT_UPDATE_REQUIRED',
  'AGENT_VERSION_TOO_OLD',
  'DEVICE_REVOKED',
  'HEADEND_RATE_LIMITED',
  'SERVICE_SPECIFIC',
  'HARDWARE_IDENTITY_UNAVAILABLE',
]);

/** Refusals that a new certificate fixes. */
const REINDIVIDUALIZE_CODES = new Set(['CERTIFICATE_REFUSED', 'UNKNOWN_DEVICE']);

/**
 * The same, as the head-end's HTTP layer answers them (403 + unsigned ErrorReply): it
 * refuses the device's chain before it can sign an answer.
 */
const REINDIVIDUALIZE_HTTP_CODES = new Set([
  'UNKNOWN_DEVICE',
  'CERT_EXPIRED',
  'CERT_UNTRUSTED_ROOT',
  'CERT_CHAIN_INVALID',
]);

/** True when a new key and certificate may cure `err`. */
function curedByNewCertificate(err: KeywardenError): boolean {
  const http = httpRefusalCode(err);
  return REINDIVIDUALIZE_CODES.has(err.code) || (!!http && REINDIVIDUALIZE_HTTP_CODES.has(http));
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason as Error)), {
      once: true,
    });
  });

/**
 * Device individualization (DESIGN.md flow step 2): creates the device key in the vault,
 * asks the provisioning authority for a certificate and stores it. It runs on first need,
 * again when a server refuses the certificate, after an agent update, and when the hardware
 * identity changed significantly (event 'hardware-changed' with error 6013).
 */
export class Individualizer extends EventEmitter<IndividualizerEvents> {
  private opened = false;
  /** Why the vault open demands a new certificate (a hardware change), until provisioned. */
  private openReason: Reason | undefined;
  private pending: Promise<DeviceCredentials> | undefined;

  constructor(private readonly opts: IndividualizerOptions) {
    super();
  }

  /** Credentials, individualizing first when needed. Concurrent callers share one run. */
  ensureIndividualized(signal?: AbortSignal): Promise<DeviceCredentials> {
    this.pending ??= this.ensure(signal).finally(() => (this.pending = undefined));
    return this.pending;
  }

  /**
   * Reacts to a server refusing this device: CERTIFICATE_REFUSED / UNKNOWN_DEVICE, or an
   * HTTP 403 refusing the device chain (unknown device, expired certificate, other root),
   * re-individualize (with a new key only after a signed refusal); anything else (a version refusal: the device must
   * update first; a revocation) is rethrown.
   */
  async handleRefusal(err: KeywardenError, signal?: AbortSignal): Promise<DeviceCredentials> {
    if (!curedByNewCertificate(err)) throw err;
    // An unsigned HTTP refusal could come from anyone on the path: it earns a new
    // certificate for the same key, never the loss of the key. Only a signed refusal from
    // the authority (CERTIFICATE_REFUSED) makes the device start over with a new key pair.
    if (!httpRefusalCode(err)) await this.opts.vault.resetDeviceKey();
    return this.individualize(Reason.PROVISIONING_REASON_CERTIFICATE_REFUSED, signal);
  }

  /**
   * Opens the vault and makes sure a device key exists, without any network: what the
   * agent needs at start-up to open its device-bound stores. A significant hardware change
   * is detected here (event + 6013) and provisioning follows on the first need.
   */
  async prepare(): Promise<void> {
    this.openReason ??= await this.openVault();
    await this.opts.vault.getOrCreateDeviceKey();
  }

  /** The credentials when the device holds a current certificate, without any network. */
  async credentialsIfIndividualized(): Promise<DeviceCredentials | undefined> {
    this.openReason ??= await this.openVault();
    const cert = this.opts.vault.loadCertificate();
    if (this.openReason !== undefined || !cert || cert.agentVersion !== this.opts.agentVersion)
      return undefined;
    return this.credentials(cert);
  }

  private async ensure(signal?: AbortSignal): Promise<DeviceCredentials> {
    const reason = (this.openReason ??= await this.openVault());
    const cert = this.opts.vault.loadCertificate();
    if (reason === undefined && cert && cert.agentVersion === this.opts.agentVersion)
      return this.credentials(cert);
    const why =
      reason ??
      (cert ? Reason.PROVISIONING_REASON_VERSION_UPDATED : Reason.PROVISIONING_REASON_FIRST);
    return this.individualize(why, signal);
  }

  /** Opens the vault once; a significant hardware change resets it (event + 6013). */
  private async openVault(): Promise<Reason | undefined> {
    if (this.opened) return undefined;
    try {
      await this.opts.vault.open();
      this.opened = true;
      return undefined;
    } catch (err) {
      if (
        !isKeywardenError(err, 'VAULT_IDENTITY_MISMATCH') &&
        !isKeywardenError(err, 'VAULT_CORRUPT')
      )
        throw err;
      this.emit(
        'hardware-changed',
        kwError('HARDWARE_CHANGED', 'the hardware identity changed significantly', {}, err),
      );
      await this.opts.vault.resetDeviceKey();
      this.opened = true;
      return Reason.PROVISIONING_REASON_HARDWARE_CHANGED;
    }
  }

  /** Provisions now, retrying transient failures up to maxAttempts (then 6009). */
  async individualize(reason: Reason, signal?: AbortSignal): Promise<DeviceCredentials> {
    const max = this.opts.maxAttempts ?? 3;
    let last: unknown;
    for (let attempt = 1; attempt <= max; attempt++) {
      signal?.throwIfAborted();
      this.emit('individualizing', { reason: Reason[reason], attempt });
      try {
        const cert = await this.provisionOnce(reason, signal);
        await this.opts.vault.storeCertificate(cert);
        this.openReason = undefined;
        this.emit('individualized', { deviceId: cert.deviceId, reason: Reason[reason] });
        return this.credentials(cert);
      } catch (err) {
        if (isKeywardenError(err) && FINAL_CODES.has(err.code)) throw err;
        last = err;
      }
      if (attempt < max) await sleep(this.opts.retryDelayMs?.(attempt) ?? 1000 * attempt, signal);
    }
    throw kwError(
      'INDIVIDUALIZATION_ATTEMPTS_EXCEEDED',
      `individualization failed ${max} times`,
      { attempts: max },
      last,
    );
  }

  private async provisionOnce(reason: Reason, signal?: AbortSignal): Promise<DeviceCertificate> {
    const publicKey = await this.opts.vault.getOrCreateDeviceKey();
    const nonce = randomBytes(NONCE_BYTES);
    const request = v1.ProvisioningRequest.create({
      devicePublicKey: spkiOf(publicKey),
      hardwareIdDigest: this.opts.identity.digest,
      agentVersion: this.opts.agentVersion,
      attestation: {
        securityLevel: v1.SecurityLevel.SECURITY_LEVEL_SOFTWARE,
        ...this.opts.attestation,
      },
      reason,
      previousDeviceId: this.opts.vault.loadCertificate()?.deviceId ?? '',
    });
    const body = await signMessageWith(
      MessageType.PROVISIONING_REQUEST,
      encodeMessage(v1.ProvisioningRequest, request),
      { sign: (d) => this.opts.vault.sign(d), chain: [] },
      { nonce, nowMs: this.now() },
    );
    const answer = await (this.opts.transport ?? httpTransport()).post(
      this.opts.provisioningUrl,
      body,
      signal,
    );
    const verified = verifyMessage(answer, MessageType.PROVISIONING_RESPONSE, {
      trustedRoot: this.opts.trustedRoot,
      nowMs: this.now(),
      expectedInReplyTo: nonce,
      replayGuard: this.opts.replayGuard,
    });
    const response = decodeMessage(
      v1.ProvisioningResponse,
      verified.payload,
      'ProvisioningResponse',
    );
    if (response.error)
      throw errorFromWire(response.error, 'INDIVIDUALIZATION_FAILED', 'provisioning refused');
    if (!response.grant) throw kwError('PROTOCOL_ERROR', 'the provisioning response is empty');
    return this.checkGrant(response.grant, spkiOf(publicKey));
  }

  /** The issued certificate must chain to the operator root and certify our key. */
  private checkGrant(
    grant: keywarden.v1.IProvisioningGrant,
    ourSpki: Uint8Array,
  ): DeviceCertificate {
    const certificate = grant.deviceCertificate ?? new Uint8Array(0);
    const chain = grant.certificateChain ?? [];
    const deviceId = grant.deviceId ?? '';
    const root = parseCertificate(this.opts.trustedRoot);
    const { leaf } = verifyCertificateChain([certificate, ...chain], root, this.now());
    if (!Buffer.from(spkiOf(leaf.publicKey)).equals(Buffer.from(ourSpki))) {
      throw kwError('PROTOCOL_ERROR', 'the issued certificate does not certify this device key');
    }
    if (!deviceId || !leaf.subject.includes(deviceId)) {
      throw kwError('PROTOCOL_ERROR', 'the issued certificate does not name the device id');
    }
    return { deviceId, certificate, chain, agentVersion: this.opts.agentVersion };
  }

  private async credentials(cert: DeviceCertificate): Promise<DeviceCredentials> {
    const vault = this.opts.vault;
    return {
      deviceId: cert.deviceId,
      publicKey: await vault.getOrCreateDeviceKey(),
      signer: { sign: (d) => vault.sign(d), chain: [cert.certificate, ...cert.chain] },
      keyAgreement: vault.keyAgreement(),
    };
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }
}
