import type { KeyObject } from 'node:crypto';
import { kwError } from '../../errors/index.js';
import type { MessageType, VerifiedMessage } from '../../protocol/envelope.js';
import type { HeadendContext } from '../headend.js';
import type { DeviceRow } from '../store/repository.js';
import { ChainCachingVerifier } from './chain-cache.js';

/** An authenticated device request. */
export interface DeviceRequest {
  readonly verified: VerifiedMessage;
  readonly device: DeviceRow;
  /** The device's certified public key: where its keys are wrapped. */
  readonly publicKey: KeyObject;
  readonly now: number;
}

const verifiers = new WeakMap<HeadendContext, ChainCachingVerifier>();

function verifierOf(ctx: HeadendContext): ChainCachingVerifier {
  let v = verifiers.get(ctx);
  if (!v) verifiers.set(ctx, (v = new ChainCachingVerifier()));
  return v;
}

/** Subject CN (device id); parsing is cached with the chain. */
function commonName(subject: string): string {
  const cn = /(?:^|\n|,\s*)CN=([^\n,]+)/.exec(subject);
  return cn?.[1]?.trim() ?? '';
}

/**
 * Verifies a device-signed request: envelope signature, chain to the operator root and its
 * extension rules, validity windows (the chain-caching verifyMessage); then that the
 * signer is a device certificate of *our* provisioning authority (a license-server
 * certificate must not pass as a device); then, the signature being good, the shared
 * replay window; then that the device is registered with this very key, and that it is not
 * revoked. Failures are thrown as HTTP-level (unsigned) errors.
 */
export async function authenticateDevice(
  ctx: HeadendContext,
  bytes: Uint8Array,
  type: MessageType,
): Promise<DeviceRequest> {
  const now = ctx.clock();
  const verified = await verifierOf(ctx).verify(bytes, type, {
    trustedRoot: ctx.pki.rootCert,
    nowMs: now,
    maxSkewMs: ctx.settings.maxSkewMs,
  });
  const leaf = verified.signerCert;
  const issuer = verified.chain[1];
  const ca = ctx.pki.identity('provisioning').cert;
  if (!leaf || verified.chain.length !== 2 || issuer?.fingerprint256 !== ca.fingerprint256)
    throw kwError(
      'CERT_CHAIN_INVALID',
      'the signer is not a device of this provisioning authority',
    );
  await ctx.nonces.checkAndRemember(verified.nonce, verified.timestamp, now);
  const deviceId = commonName(leaf.subject);
  const device = await ctx.store.getDevice(deviceId);
  if (!device)
    throw kwError('UNKNOWN_DEVICE', `device ${deviceId} is not registered`, { deviceId });
  if (!device.publicKey.equals(verified.signerSpki))
    throw kwError('CERT_CHAIN_INVALID', `the certificate key is not device ${deviceId}'s key`);
  if (device.status === 'revoked')
    throw kwError('DEVICE_REVOKED', `device ${deviceId} is revoked`, { deviceId });
  return { verified, device, publicKey: verified.signerKey, now };
}
