import type { KeyObject } from 'node:crypto';
import { aeadUnwrap } from '../crypto/aead.js';
import { eciesUnwrap, type KeyAgreement } from '../crypto/ecies.js';
import { kwError } from '../errors/index.js';
import { keywarden } from '../protocol/generated/proto.js';
import { contentKeyContext, leafKeyContext, rootKeyContext } from '../protocol/key-wrap.js';

const W = keywarden.v1.KeyWrapping;

/** The keys a device holds to unwrap licenses. */
export interface UnwrapKeys {
  /** This device's id: a license issued to another device is refused. */
  readonly deviceId: string;
  /** ECDH with the device key. */
  readonly device: KeyAgreement;
  /** Domain private keys by domain id. */
  readonly domainKeys?: ReadonlyMap<string, KeyObject>;
  /** Root keys of valid root licenses, by root license id. */
  readonly rootKeys?: ReadonlyMap<string, Uint8Array>;
}

/** The unwrapped keys of a license. */
export interface UnwrappedLicense {
  /** Content keys by KID (hex). */
  readonly keys: Map<string, Uint8Array>;
  /** A root license's root key. */
  readonly rootKey: Uint8Array | undefined;
}

function ecdhFor(
  license: keywarden.v1.ILicense,
  wrapping: keywarden.v1.KeyWrapping | null | undefined,
  k: UnwrapKeys,
): KeyAgreement | KeyObject {
  if (wrapping === W.KEY_WRAPPING_DEVICE) return k.device;
  if (wrapping === W.KEY_WRAPPING_DOMAIN) {
    const domainId = license.policy?.domain?.domainId ?? '';
    const key = k.domainKeys?.get(domainId);
    if (!key)
      throw kwError('NOT_A_DOMAIN_MEMBER', `the license needs domain "${domainId}"`, { domainId });
    return key;
  }
  throw kwError('LICENSE_PROCESSING_FAILED', `unexpected key wrapping ${String(wrapping)}`);
}

/** A leaf key: any one valid root suffices (DESIGN.md "Subscriptions"). */
function unwrapLeaf(key: keywarden.v1.IKeyContainer, k: UnwrapKeys): Uint8Array {
  const kid = key.kid ?? new Uint8Array(0);
  for (const wrap of key.rootWraps ?? []) {
    const rootKey = k.rootKeys?.get(wrap.rootLicenseId ?? '');
    if (rootKey)
      return aeadUnwrap(
        rootKey,
        wrap.wrappedKey ?? new Uint8Array(0),
        leafKeyContext(wrap.rootLicenseId ?? '', kid),
      );
  }
  throw kwError('KEY_UNWRAP_FAILED', 'no valid root license for this leaf', {
    roots: (key.rootWraps ?? []).map((w) => w.rootLicenseId),
  });
}

/** Unwraps every key of `license` (device, domain, or via a root license's root key). */
export function unwrapLicense(license: keywarden.v1.ILicense, k: UnwrapKeys): UnwrappedLicense {
  if (license.deviceId && license.deviceId !== k.deviceId) {
    throw kwError('LICENSE_WRONG_DEVICE', 'the license was issued to another device', {
      deviceId: license.deviceId,
    });
  }
  const id = license.id ?? '';
  const keys = new Map<string, Uint8Array>();
  for (const key of license.keys ?? []) {
    const kid = key.kid ?? new Uint8Array(0);
    const clear =
      key.wrapping === W.KEY_WRAPPING_ROOT
        ? unwrapLeaf(key, k)
        : eciesUnwrap(
            ecdhFor(license, key.wrapping, k),
            key.wrappedKey ?? new Uint8Array(0),
            contentKeyContext(id, kid),
          );
    keys.set(Buffer.from(kid).toString('hex'), clear);
  }
  const rk = license.rootKey;
  const rootKey = rk
    ? eciesUnwrap(
        ecdhFor(license, rk.wrapping, k),
        rk.wrappedKey ?? new Uint8Array(0),
        rootKeyContext(id),
      )
    : undefined;
  return { keys, rootKey };
}
