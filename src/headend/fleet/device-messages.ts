import { spkiOf } from '../../crypto/ecdsa.js';
import { kwError } from '../../errors/index.js';
import { decodeMessage } from '../../protocol/codec.js';
import { MessageType, verifyMessage, type VerifiedMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import type { DeviceRow } from '../store/repository.js';

const v1 = keywarden.v1;

/** A device-signed fleet message, verified. */
export interface VerifiedDeviceMessage {
  readonly verified: VerifiedMessage;
  readonly device: DeviceRow;
}

/** Subject CN (the device id). */
function commonName(subject: string): string {
  const cn = /(?:^|\n|,\s*)CN=([^\n,]+)/.exec(subject);
  return cn?.[1]?.trim() ?? '';
}

/**
 * Verifies a device-signed fleet message the way device-auth.ts verifies requests: the
 * envelope signature and chain to the operator root, a leaf certified by *our* provisioning
 * authority, a registered device with this very key, and the device the topic names. A
 * revoked device's messages are still accepted (its ack of a wipe is what the operator
 * wants to see). Replay protection is the caller's (acks: the nonce window; statuses: the
 * report time must increase).
 */
export function verifyDeviceMessage(
  ctx: HeadendContext,
  bytes: Uint8Array,
  type: MessageType,
  topicDeviceId: string,
  maxSkewMs: number,
): Promise<VerifiedDeviceMessage> {
  return (async () => {
    const verified = verifyMessage(bytes, type, {
      trustedRoot: ctx.pki.rootCert,
      nowMs: ctx.clock(),
      maxSkewMs,
    });
    const leaf = verified.signerCert;
    const ca = ctx.pki.identity('provisioning').cert;
    if (
      !leaf ||
      verified.chain.length !== 2 ||
      verified.chain[1]?.fingerprint256 !== ca.fingerprint256
    )
      throw kwError(
        'CERT_CHAIN_INVALID',
        'the signer is not a device of this provisioning authority',
      );
    const deviceId = commonName(leaf.subject);
    if (deviceId !== topicDeviceId)
      throw kwError(
        'CERT_CHAIN_INVALID',
        `device ${deviceId} signed a message on the topic of ${topicDeviceId}`,
      );
    const device = await ctx.store.getDevice(deviceId);
    if (!device)
      throw kwError('UNKNOWN_DEVICE', `device ${deviceId} is not registered`, { deviceId });
    if (!device.publicKey.equals(spkiOf(verified.signerKey)))
      throw kwError('CERT_CHAIN_INVALID', `the certificate key is not device ${deviceId}'s key`);
    return { verified, device };
  })();
}

/** Decodes a verified ack; its device id must be the signer's. */
export function ackOf(m: VerifiedDeviceMessage): keywarden.v1.CommandAck {
  const ack = decodeMessage(v1.CommandAck, m.verified.payload, 'CommandAck');
  if (ack.deviceId !== m.device.id)
    throw kwError('HEADEND_BAD_REQUEST', `ack names device ${ack.deviceId}, not the signer`);
  return ack;
}

/** Decodes a verified status; its device id must be the signer's. */
export function statusOf(m: VerifiedDeviceMessage): keywarden.v1.DeviceStatus {
  const st = decodeMessage(v1.DeviceStatus, m.verified.payload, 'DeviceStatus');
  if (st.deviceId !== m.device.id)
    throw kwError('HEADEND_BAD_REQUEST', `status names device ${st.deviceId}, not the signer`);
  return st;
}
