import { decodeMessage, encodeMessage } from '../protocol/codec.js';
import type { X509Certificate } from 'node:crypto';
import { MessageType, verifyMessage } from '../protocol/envelope.js';
import { keywarden } from '../protocol/generated/proto.js';
import { kwError } from '../errors/index.js';
import { unwrapLicense, type UnwrapKeys } from './license-keys.js';
import { signedExchange, type ServiceClientOptions } from './signed-exchange.js';
import { errorFromWire } from './wire-errors.js';

const v1 = keywarden.v1;

/** Options of a {@link LicenseExchange}. */
export interface LicenseExchangeOptions extends ServiceClientOptions {
  /** The license server URL (from the pssh, or the configured override). */
  readonly licenseUrl: string;
  /** Domain private keys and valid root keys the device holds. */
  readonly domainKeys?: UnwrapKeys['domainKeys'];
  readonly rootKeys?: UnwrapKeys['rootKeys'];
}

/** A license and its unwrapped keys. */
export interface AcquiredLicense {
  readonly license: keywarden.v1.License;
  /** Content keys by KID (lower-case hex). */
  readonly keys: Map<string, Uint8Array>;
  /** A root license's root key (32 bytes). */
  readonly rootKey: Uint8Array | undefined;
  /** The signed LicenseResponse as received: what the store keeps and re-verifies. */
  readonly signed: Uint8Array;
}

/**
 * Re-verifies a stored, signed LicenseResponse (see {@link AcquiredLicense.signed}): the
 * signature and the chain to the operator root as of signing time (a license outlives the
 * freshness window and may outlive the server certificate). Returns the License; a license
 * signed by any other key is SIGNATURE_INVALID / CERT_UNTRUSTED_ROOT.
 */
export function verifyStoredLicense(
  signed: Uint8Array,
  trustedRoot: Uint8Array | X509Certificate,
): keywarden.v1.License {
  const envelope = decodeMessage(v1.SignedMessage, signed, 'SignedMessage');
  const body = decodeMessage(v1.SignedBody, envelope.body, 'SignedBody');
  const verified = verifyMessage(signed, MessageType.LICENSE_RESPONSE, {
    trustedRoot,
    nowMs: Number(body.timestampMs),
    maxSkewMs: 0,
  });
  const res = decodeMessage(v1.LicenseResponse, verified.payload, 'LicenseResponse');
  if (!res.license)
    throw kwError('LICENSE_PROCESSING_FAILED', 'the stored answer holds no license');
  return res.license as keywarden.v1.License;
}

/**
 * A thin license client: signs a LicenseRequest with the device key and chain, POSTs it,
 * verifies the signed answer against the operator root, surfaces a LicenseError as its
 * catalogue code (6007 with custom data, 6041 with the domain server URL...) and unwraps
 * the keys. Issue 4's license manager builds the lifecycle on it.
 */
export class LicenseExchange {
  constructor(private readonly opts: LicenseExchangeOptions) {}

  /** NEW: a license for `request.keyIds` / `contentId` / `psshData`. */
  acquire(
    request: Omit<keywarden.v1.ILicenseRequest, 'type'>,
    signal?: AbortSignal,
  ): Promise<AcquiredLicense> {
    return this.licensed({ ...request, type: v1.LicenseRequest.RequestType.NEW }, signal);
  }

  /** RENEWAL of `licenseId`. */
  renew(
    licenseId: string,
    extra: keywarden.v1.ILicenseRequest = {},
    signal?: AbortSignal,
  ): Promise<AcquiredLicense> {
    return this.licensed(
      { ...extra, licenseId, type: v1.LicenseRequest.RequestType.RENEWAL },
      signal,
    );
  }

  /** RELEASE of `licenseId`; resolves when the server confirmed. */
  async release(licenseId: string, signal?: AbortSignal): Promise<void> {
    const { res } = await this.send(
      { licenseId, type: v1.LicenseRequest.RequestType.RELEASE },
      signal,
    );
    if (res.released?.licenseId !== licenseId)
      throw kwError('PROTOCOL_ERROR', 'the release was not confirmed');
  }

  private async licensed(
    request: keywarden.v1.ILicenseRequest,
    signal?: AbortSignal,
  ): Promise<AcquiredLicense> {
    const { res, raw } = await this.send(request, signal);
    if (!res.license) throw kwError('PROTOCOL_ERROR', 'the license response holds no license');
    const license = v1.License.fromObject(v1.License.toObject(res.license as keywarden.v1.License));
    const { keys, rootKey } = unwrapLicense(license, {
      deviceId: this.opts.credentials.deviceId,
      device: this.opts.credentials.keyAgreement,
      domainKeys: this.opts.domainKeys,
      rootKeys: this.opts.rootKeys,
    });
    return { license, keys, rootKey, signed: raw };
  }

  private async send(
    request: keywarden.v1.ILicenseRequest,
    signal?: AbortSignal,
  ): Promise<{ res: keywarden.v1.LicenseResponse; raw: Uint8Array }> {
    const payload = encodeMessage(v1.LicenseRequest, v1.LicenseRequest.create(request));
    const verified = await signedExchange(
      this.opts,
      this.opts.licenseUrl,
      MessageType.LICENSE_REQUEST,
      payload,
      MessageType.LICENSE_RESPONSE,
      signal,
    );
    const res = decodeMessage(v1.LicenseResponse, verified.payload, 'LicenseResponse');
    if (res.error) throw errorFromWire(res.error, 'LICENSE_ACQUISITION_FAILED', 'license refused');
    return { res, raw: verified.raw };
  }
}
