import type { X509Certificate } from 'node:crypto';
import type { KeyAgreement } from '../crypto/ecies.js';
import { kwError } from '../errors/index.js';
import { decodeMessage } from '../protocol/codec.js';
import { DEFAULT_MAX_SKEW_MS, MessageType, verifyMessage } from '../protocol/envelope.js';
import { keywarden } from '../protocol/generated/proto.js';
import { unwrapLicense } from './license-keys.js';

const v1 = keywarden.v1;

/** Subject common name of the operator's license server certificate. */
export const LICENSE_SERVER_NAME = 'keywarden license server';

/** How to open an embedded license. */
export interface EmbeddedLicenseOptions {
  /** The operator root the license server's chain must lead to (DER or parsed). */
  readonly trustedRoot: Uint8Array | X509Certificate;
  /**
   * Root keys of the root licenses the device holds *and that are valid now* (the caller's
   * policy engine decides), by root license id.
   */
  readonly rootKeys: ReadonlyMap<string, Uint8Array>;
  /** Trusted time (the secure clock), ms since the epoch. */
  readonly nowMs: number;
  /** Accepted clock difference between the head-end and the device; default 5 min. */
  readonly maxSkewMs?: number;
  /** Subject CN the signer must have; default {@link LICENSE_SERVER_NAME}. */
  readonly licenseServerName?: string;
}

/** An opened embedded license. */
export interface OpenedEmbeddedLicense {
  /** The verified License (a leaf: policy.chain names its roots, device_id is empty). */
  readonly license: keywarden.v1.License;
  /** Content keys by KID (lower-case hex). */
  readonly keys: Map<string, Uint8Array>;
  /** The roots named by the license whose key the device holds, in the license's order. */
  readonly heldRoots: readonly string[];
  /** The signer's timestamp, ms since the epoch. */
  readonly signedAtMs: number;
  /** License.expires_at_ms (0 = none). */
  readonly expiresAtMs: number;
}

/** No ECIES in an embedded license: every key is wrapped under a root key. */
const NO_DEVICE_KEY: KeyAgreement = {
  deriveSharedSecret: () => {
    throw kwError('PROTOCOL_ERROR', 'an embedded license holds a key wrapped to a device');
  },
};

function commonName(cert: X509Certificate | undefined): string {
  const line = (cert?.subject ?? '').split('\n').find((l) => l.startsWith('CN='));
  return line ? line.slice(3) : '';
}

/** The signer must be the license server: issued by the operator root itself, by name. */
function checkSigner(chain: readonly X509Certificate[], opts: EmbeddedLicenseOptions): void {
  const leaf = chain[0];
  const name = opts.licenseServerName ?? LICENSE_SERVER_NAME;
  if (chain.length !== 1 || leaf?.ca !== false || commonName(leaf) !== name)
    throw kwError('SIGNATURE_INVALID', 'the embedded license is not signed by the license server', {
      signer: leaf?.subject.replace(/\n/g, ', ') ?? '',
    });
}

/** An embedded license is a leaf for everyone: no device, no root key, root-wrapped keys. */
function checkShape(license: keywarden.v1.License): readonly string[] {
  const chain = license.policy?.chain;
  const roots = chain?.rootLicenseIds ?? [];
  if (license.deviceId !== '')
    throw kwError('PROTOCOL_ERROR', 'an embedded license must not name a device', {
      deviceId: license.deviceId,
    });
  if (!chain || chain.isRoot || roots.length === 0 || license.rootKey)
    throw kwError('PROTOCOL_ERROR', 'an embedded license is a leaf that names its roots');
  if (license.keys.length === 0)
    throw kwError('PROTOCOL_ERROR', 'the embedded license carries no key');
  if (license.keys.some((k) => k.wrapping !== v1.KeyWrapping.KEY_WRAPPING_ROOT))
    throw kwError('PROTOCOL_ERROR', 'an embedded license wraps its keys under root keys only');
  return roots;
}

/**
 * Freshness without a nonce. An embedded license repeats in every fragment of its key
 * period and is replayed by design (time-shift, recordings, late joiners), so there is no
 * nonce, reply binding or replay window. Instead:
 * - the signature binds the issue time: |envelope timestamp − issued_at_ms| ≤ skew;
 * - it is not from the future: issued_at_ms ≤ now + skew (else LICENSE_NOT_YET_VALID);
 * - it is within its validity: now < expires_at_ms (when set) and, when the policy sets a
 *   license duration, now < issued_at_ms + duration (else LICENSE_EXPIRED).
 * A recorded license therefore opens only while it is valid, and only with a valid root.
 */
function checkFreshness(
  license: keywarden.v1.License,
  signedAtMs: number,
  opts: EmbeddedLicenseOptions,
): void {
  const skew = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const now = opts.nowMs;
  const issued = Number(license.issuedAtMs);
  const expires = Number(license.expiresAtMs);
  const duration = Number(license.policy?.licenseDurationS ?? 0) * 1000;
  if (!Number.isFinite(issued) || Math.abs(signedAtMs - issued) > skew)
    throw kwError('MESSAGE_STALE', 'the embedded license was not signed when it was issued', {
      signedAtMs,
      issuedAtMs: issued,
    });
  if (issued > now + skew)
    throw kwError('LICENSE_NOT_YET_VALID', 'the embedded license is issued in the future', {
      issuedAtMs: issued,
      nowMs: now,
    });
  if ((expires > 0 && now >= expires) || (duration > 0 && now >= issued + duration))
    throw kwError('LICENSE_EXPIRED', 'the embedded license has expired', {
      expiresAtMs: expires,
      nowMs: now,
    });
}

/**
 * Opens a leaf license embedded in a live stream's pssh (PsshData.embedded_license): verifies
 * the envelope (type EMBEDDED_LICENSE) and its chain to the operator root, requires the
 * license server as signer, applies the freshness rule above, checks that it is a leaf for
 * every device, and unwraps its content keys with the root key of any held root it names.
 *
 * Errors: DECODE_FAILED; CERT_CHAIN_INVALID, CERT_UNTRUSTED_ROOT (another operator),
 * CERT_EXPIRED; SIGNATURE_INVALID (altered, or not signed by the license server);
 * MESSAGE_TYPE_MISMATCH; MESSAGE_STALE, LICENSE_NOT_YET_VALID, LICENSE_EXPIRED;
 * PROTOCOL_ERROR (not an embedded leaf); ROOT_LICENSE_MISSING (no valid root license of
 * the device is among its roots); KEY_UNWRAP_FAILED (a wrap does not open with the root key).
 */
export function openEmbeddedLicense(
  bytes: Uint8Array,
  opts: EmbeddedLicenseOptions,
): OpenedEmbeddedLicense {
  // The skew check is replaced by the license-bound rule of checkFreshness.
  const verified = verifyMessage(bytes, MessageType.EMBEDDED_LICENSE, {
    trustedRoot: opts.trustedRoot,
    nowMs: opts.nowMs,
    maxSkewMs: Number.POSITIVE_INFINITY,
  });
  checkSigner(verified.chain, opts);
  const license = decodeMessage(v1.License, verified.payload, 'License');
  const roots = checkShape(license);
  checkFreshness(license, verified.timestamp, opts);
  const heldRoots = roots.filter((r) => opts.rootKeys.has(r));
  const unopenable = license.keys.find(
    (k) => !(k.rootWraps ?? []).some((w) => heldRoots.includes(w.rootLicenseId ?? '')),
  );
  if (heldRoots.length === 0 || unopenable)
    throw kwError(
      'ROOT_LICENSE_MISSING',
      'no valid root license of this device opens the embedded license',
      {
        roots,
      },
    );
  const onlyHeld = new Map(heldRoots.map((r) => [r, opts.rootKeys.get(r)!]));
  const { keys } = unwrapLicense(license, {
    deviceId: '',
    device: NO_DEVICE_KEY,
    rootKeys: onlyHeld,
  });
  return {
    license,
    keys,
    heldRoots,
    signedAtMs: verified.timestamp,
    expiresAtMs: Number(license.expiresAtMs),
  };
}
