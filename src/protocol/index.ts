/**
 * keywarden's wire protocol: generated protobuf messages, the signed envelope and key-wrap
 * contexts.
 *
 * ## API for the head-end
 *
 * Messages (`proto/*.proto`, package `keywarden.v1`): import `{ keywarden }` from
 * `./generated/proto.js` and use `keywarden.v1.X` (`ProvisioningRequest`,
 * `ProvisioningResponse`, `LicenseRequest`, `LicenseResponse`, `License`, `Policy`,
 * `KeyContainer`, `DomainJoinRequest`, ...). Decode untrusted bytes with
 * {@link decodeMessage}(cls, bytes, what) (DECODE_FAILED on any bad input, 1 MiB limit) and
 * encode with {@link encodeMessage}(cls, msg).
 *
 * Envelope (`envelope.ts`):
 * - `signMessage(type, payload, { privateKey, chain }, { inReplyTo?, nowMs?, nonce? })`
 *   → `Uint8Array` (a serialized `SignedMessage`). `chain` is DER, leaf first (include the
 *   intermediates; the root may be omitted). Responses set `inReplyTo` = request nonce.
 * - `verifyMessage(bytes, expectedType, { trustedRoot, nowMs?, replayGuard?, maxSkewMs?,
 *   expectedInReplyTo?, proofOfPossession? })` → `{ payload, signerCert, chain, signerKey,
 *   nonce, timestamp, inReplyTo }`. Errors (KeywardenError `.code`): DECODE_FAILED,
 *   CERT_CHAIN_INVALID, CERT_UNTRUSTED_ROOT, CERT_EXPIRED, SIGNATURE_INVALID,
 *   MESSAGE_TYPE_MISMATCH, MESSAGE_STALE, NONCE_REPLAYED, PROTOCOL_ERROR.
 * - Provisioning requests carry no chain: verify them with
 *   `proofOfPossession: (payload) => decodeMessage(ProvisioningRequest, payload, ...).devicePublicKey`.
 * - Replay window: `new ReplayGuard({ windowMs: 2 * maxSkewMs })` from
 *   `../crypto/replay-guard.js`, or any `NonceRegistry` (e.g. SQLite-backed for workers).
 *
 * Key wrapping (the device unwraps exactly this way; see docs/protocol.md):
 * - content key → device/domain: `eciesWrap(devicePublicKey, key, contentKeyContext(licenseId, kid))`
 *   (`../crypto/ecies.js`); the device key is `signerCert.publicKey` of the license request.
 * - root license: 32-byte root key → `License.rootKey = { wrapping, wrappedKey:
 *   eciesWrap(pub, rootKey, rootKeyContext(license.id)) }`; a root License.id is the root
 *   license id leaves name.
 * - leaf key under a root: `RootWrap{ rootLicenseId, wrappedKey: aeadWrap(rootKey, key,
 *   leafKeyContext(rootLicenseId, kid)) }` (`../crypto/aead.js`), `wrapping = KEY_WRAPPING_ROOT`.
 * - domain private key (PKCS#8 DER, `pkcs8Of` in `../crypto/ecdsa.js`) →
 *   `eciesWrap(devicePublicKey, pkcs8, domainKeyContext(domainId, revision))`.
 * - `LicenseError.code` / `ProvisioningError.code` are catalogue numbers (`ERRORS.X.number`).
 *
 * Transport: HTTP POST, `Content-Type: application/x-protobuf`, body = SignedMessage; a 200
 * answer is a SignedMessage of the matching response type; unparseable requests get a
 * 4xx with an unsigned `ErrorReply`.
 */
export { decodeMessage, encodeMessage, MAX_MESSAGE_BYTES, type MessageClass } from './codec.js';
export {
  DEFAULT_MAX_SKEW_MS,
  MessageType,
  NONCE_BYTES,
  peekMessageType,
  signMessage,
  signMessageWith,
  verifyMessage,
  type CallbackSigner,
  type KeySigner,
  type SignOptions,
  type VerifiedMessage,
  type VerifyOptions,
} from './envelope.js';
export { contentKeyContext, domainKeyContext, leafKeyContext, rootKeyContext } from './key-wrap.js';
export { keywarden } from './generated/proto.js';
