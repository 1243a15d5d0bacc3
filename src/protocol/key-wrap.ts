/**
 * Key-wrap context strings: the AAD of every wrapped key names the slot it belongs to, so a
 * wrapped key cannot be moved to another license, key id or domain revision. Both sides
 * (head-end wrapping, device unwrapping) must build them with these functions.
 */

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A content key in license `licenseId`, wrapped to the device or domain key (ECIES). */
export function contentKeyContext(licenseId: string, kid: Uint8Array): string {
  return `keywarden/v1 content-key ${licenseId} ${hex(kid)}`;
}

/** A root license's 32-byte root key, wrapped to the device or domain key (ECIES). */
export function rootKeyContext(rootLicenseId: string): string {
  return `keywarden/v1 root-key ${rootLicenseId}`;
}

/** A leaf content key wrapped under root `rootLicenseId`'s root key (AES-256-GCM). */
export function leafKeyContext(rootLicenseId: string, kid: Uint8Array): string {
  return `keywarden/v1 leaf-key ${rootLicenseId} ${hex(kid)}`;
}

/** A domain private key (PKCS#8) wrapped to a member device (ECIES). */
export function domainKeyContext(domainId: string, revision: number): string {
  return `keywarden/v1 domain-key ${domainId} ${revision}`;
}
