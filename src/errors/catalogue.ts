/**
 * The error catalogue: one table, stable numbers. 60xx numbers follow the product brief;
 * 7xxx are keywarden's own. docs/errors.md is generated from this table's content by hand
 * and must be kept in step with it (a unit test checks that every entry is documented).
 */
export interface ErrorSpec {
  /** Stable number shown to users and carried on the wire. */
  readonly number: number;
  /** What the user should do about it. */
  readonly hint: string;
}

export const ERRORS = {
  // Product brief codes.
  PLAYBACK_FAILED: { number: 6000, hint: 'Playback failed; see the cause for details.' },
  INDIVIDUALIZATION_FAILED: { number: 6001, hint: 'Check the provisioning URL and network.' },
  LICENSE_ACQUISITION_FAILED: { number: 6002, hint: 'Check the license server URL and network.' },
  HEADER_MALFORMED: { number: 6005, hint: 'The content header (pssh) is malformed.' },
  LICENSE_PROCESSING_FAILED: { number: 6006, hint: 'The license could not be processed.' },
  SERVICE_SPECIFIC: { number: 6007, hint: 'The service returned an error; see its custom data.' },
  INDIVIDUALIZATION_ATTEMPTS_EXCEEDED: {
    number: 6009,
    hint: 'Individualization kept failing; check the provisioning service, then retry later.',
  },
  PROTOCOL_ERROR: { number: 6010, hint: 'The peer sent a message that breaks the protocol.' },
  LICENSE_URL_OVERRIDE_REQUIRED: {
    number: 6011,
    hint: 'The content names no license server: set licenseServerUrl in the config or pass serverUrl.',
  },
  HARDWARE_CHANGED: {
    number: 6013,
    hint: 'The hardware identity changed; the device individualizes again.',
  },
  CONTENT_NOT_PROTECTED: { number: 6017, hint: 'The file carries no Common Encryption data.' },
  INITIALIZATION_FAILED: { number: 6208, hint: 'The agent could not initialize.' },

  // 7000-7099: media files (ISO BMFF, CENC, PIFF).
  MEDIA_TRUNCATED: { number: 7000, hint: 'The file ends inside a box; it is truncated.' },
  MEDIA_BAD_BOX_SIZE: { number: 7001, hint: 'A box declares a size that cannot be right.' },
  MEDIA_NESTING_TOO_DEEP: { number: 7002, hint: 'Boxes are nested deeper than any real file.' },
  MEDIA_MALFORMED_BOX: { number: 7003, hint: 'A box has contents that break its definition.' },
  MEDIA_NOT_MP4: { number: 7004, hint: 'The input is not an ISO BMFF (MP4) file.' },
  MEDIA_MISSING_BOX: { number: 7005, hint: 'A box that the file needs is missing.' },
  MEDIA_UNSUPPORTED: { number: 7006, hint: 'The file uses a feature keywarden does not support.' },
  MEDIA_UNKNOWN_SCHEME: { number: 7007, hint: 'Supported schemes: cenc, cbcs, cens, cbc1, piff.' },
  MEDIA_MISSING_TENC: { number: 7008, hint: 'An encrypted track has no track encryption box.' },
  MEDIA_SUBSAMPLE_OVERFLOW: { number: 7009, hint: 'A subsample map is larger than its sample.' },
  MEDIA_SAMPLE_OUT_OF_RANGE: { number: 7010, hint: 'A sample lies outside its media data.' },
  MEDIA_BAD_IV: { number: 7011, hint: 'An IV has a size other than 8 or 16 bytes.' },
  MEDIA_MISSING_KEY: { number: 7012, hint: 'Pass --key KID:KEY for every KID that inspect lists.' },
  MEDIA_WRONG_KEY: { number: 7013, hint: 'The key does not decrypt this content; check it.' },
  MEDIA_UNSUPPORTED_CODEC: { number: 7014, hint: 'The packager supports H.264, H.265 and AAC.' },
  MEDIA_BITSTREAM: { number: 7015, hint: 'A video bitstream could not be parsed.' },
  MEDIA_TOO_LARGE: { number: 7016, hint: "A box or table exceeds keywarden's size limits." },
  // 7040-7049: the packager (keywarden package).
  MEDIA_PACKAGE_BAD_IV: {
    number: 7040,
    hint: 'Give --iv as 8 bytes (cenc, cens) or 16 bytes (any scheme) of hex.',
  },
  MEDIA_ALREADY_PROTECTED: {
    number: 7041,
    hint: 'The input is already encrypted: decrypt it, then package the clear file.',
  },

  // 7100-7199: native addon.
  NATIVE_LOAD_FAILED: { number: 7100, hint: 'Rebuild the addon: npm run build:native.' },
  NATIVE_BAD_ARGUMENT: { number: 7101, hint: 'Internal: a bad argument reached the addon.' },
  NATIVE_CRYPTO_FAILED: { number: 7102, hint: 'OpenSSL reported an error.' },
  NATIVE_CLOSED: { number: 7103, hint: 'The cipher was used after close().' },
  NATIVE_BAD_KEY: { number: 7104, hint: 'An AES-128 content key is 16 bytes.' },
  NATIVE_BAD_PATTERN: { number: 7105, hint: 'Pattern counts are 0-15, and 0:N is refused.' },

  KMS_SCENARIO_INVALID: {
    number: 7110,
    hint: 'The scripted KMS scenario is invalid; see the details for the field at fault.',
  },
  KMS_DEVICE_FAILED: {
    number: 7111,
    hint: 'The DRM device could not be opened or read; check the path (/dev/dri/cardN) and permissions.',
  },
  KMS_UNAVAILABLE: {
    number: 7112,
    hint: 'The addon was built without libdrm; install libdrm-dev and run npm run build:native.',
  },
  UEVENT_FAILED: {
    number: 7113,
    hint: 'The netlink uevent watcher could not start; output changes are then seen only by polling.',
  },

  // 7200-7299: command line and configuration.
  CLI_USAGE: { number: 7200, hint: 'See keywarden --help.' },
  CLI_BAD_KEY: { number: 7201, hint: 'A key is KID:KEY or KEY, 16 bytes each, in hex or base64.' },
  IO_FAILED: { number: 7202, hint: 'A file could not be read or written; check the path.' },

  // 7300-7399: protocol and device crypto (envelope, certificates, key wrap, key vault).
  SIGNATURE_INVALID: {
    number: 7300,
    hint: 'The message signature does not verify; it was altered.',
  },
  CERT_CHAIN_INVALID: { number: 7301, hint: 'The certificate chain is malformed or broken.' },
  CERT_EXPIRED: {
    number: 7302,
    hint: 'A certificate is expired or not yet valid; check the clock.',
  },
  CERT_UNTRUSTED_ROOT: { number: 7303, hint: 'The chain does not lead to the operator root.' },
  NONCE_REPLAYED: { number: 7304, hint: 'The message was seen before: a replay was refused.' },
  MESSAGE_STALE: {
    number: 7305,
    hint: 'The message timestamp is outside the allowed skew; check the clock.',
  },
  MESSAGE_TYPE_MISMATCH: {
    number: 7306,
    hint: 'The peer sent a different kind of message than expected.',
  },
  DECODE_FAILED: { number: 7307, hint: 'A protocol message could not be decoded.' },
  KEY_UNWRAP_FAILED: { number: 7308, hint: 'A wrapped key is not for this device or was altered.' },
  VAULT_CORRUPT: {
    number: 7309,
    hint: 'The key vault is corrupt; the device must individualize again.',
  },
  VAULT_IDENTITY_MISMATCH: {
    number: 7310,
    hint: 'The key vault belongs to other hardware; the device must individualize again.',
  },
  AGENT_UPDATE_REQUIRED: {
    number: 7311,
    hint: 'The server refuses this agent version; update keywarden.',
  },
  CERTIFICATE_REFUSED: {
    number: 7312,
    hint: 'The server refused the device certificate; re-individualize.',
  },
  LICENSE_WRONG_DEVICE: { number: 7313, hint: 'The license was issued to another device.' },
  NOT_INDIVIDUALIZED: {
    number: 7314,
    hint: 'The device has no certificate yet; individualize first.',
  },
  HARDWARE_IDENTITY_UNAVAILABLE: {
    number: 7315,
    hint: 'No hardware identity source is readable; configure one (machine-id, serial).',
  },
  TRANSPORT_FAILED: {
    number: 7316,
    hint: 'The server could not be reached or answered with an HTTP error.',
  },

  // 6030-6037: output protection (product brief codes; issue 6, docs/output-protection.md).
  OUTPUT_PROTECTION_UNMET: {
    number: 6030,
    hint: 'An active output cannot give the protection the license demands; disconnect it or use a protected (HDCP) display.',
  },
  OUTPUT_LINK_LOST: {
    number: 6031,
    hint: 'The HDCP link was lost during playback; playback resumes once the link is protected again.',
  },
  OUTPUT_RENEGOTIATION_FAILED: {
    number: 6032,
    hint: 'HDCP could not be established on the output; check the cable and the display.',
  },
  OUTPUT_SINK_REVOKED: {
    number: 6033,
    hint: 'The connected display or receiver is on the HDCP revocation list; use another display.',
  },
  OUTPUT_SINK_TAMPERED: {
    number: 6034,
    hint: 'The connected display or receiver failed its integrity check; use another display.',
  },
  OUTPUT_CONNECTOR_ADDED: {
    number: 6035,
    hint: 'A new output was connected during playback; it is checked before playback resumes.',
  },
  OUTPUT_STATUS_UNKNOWN: {
    number: 6036,
    hint: 'The output state cannot be read (no DRM/KMS device or libdrm); the license needs it.',
  },
  OUTPUT_CANNOT_ENGAGE: {
    number: 6037,
    hint: 'Output protection could not be requested: the agent needs DRM master, or the driver has no HDCP.',
  },

  // Domains (product brief codes), answered by the head-end's domain controller.
  DOMAIN_FULL: { number: 6040, hint: 'The domain has its maximum of devices; remove one first.' },
  NOT_A_DOMAIN_MEMBER: {
    number: 6041,
    hint: 'The content is domain-bound: join the domain named in the answer, then retry.',
  },
  UNKNOWN_DOMAIN_ACCOUNT: {
    number: 6042,
    hint: 'The account has no domain; check the account id.',
  },

  // 6050-6079: the device's license lifecycle and policy engine (issue 4).
  LICENSE_EXPIRED: {
    number: 6050,
    hint: 'The license has expired; acquire a new one (or renew it) while online.',
  },
  PLAYBACK_NOT_ALLOWED: { number: 6051, hint: 'The license does not grant playback (can_play).' },
  LICENSE_RELEASED: { number: 6052, hint: 'The license was released; acquire a new one.' },
  LICENSE_REVOKED: { number: 6053, hint: 'The operator revoked this license or its keys.' },
  SECURITY_LEVEL_TOO_LOW: {
    number: 6054,
    hint: 'The license needs a higher device security level (a TEE-backed key vault).',
  },
  APPLICATION_NOT_ALLOWED: {
    number: 6055,
    hint: 'The license is restricted to other applications.',
  },
  ROOT_LICENSE_MISSING: {
    number: 6056,
    hint: 'The leaf license has no valid root license on this device; renew the subscription.',
  },
  LICENSE_NOT_FOUND: { number: 6057, hint: 'No stored license matches; acquire one first.' },
  RENEWAL_FAILED: {
    number: 6058,
    hint: 'The license could not be renewed and its recovery window has ended; go online.',
  },
  CANNOT_PERSIST: {
    number: 6059,
    hint: 'The license does not allow offline storage (can_persist); acquire it as streaming.',
  },
  CANNOT_RENEW: { number: 6060, hint: 'The license does not allow renewal (can_renew).' },
  ACQUIRE_ABORTED: { number: 6061, hint: 'The caller cancelled the request.' },
  CLOCK_ROLLBACK: {
    number: 6062,
    hint: 'The wall clock went back; keywarden keeps using its trusted time. Fix the clock (NTP).',
  },
  CLOCK_UNTRUSTED: {
    number: 6063,
    hint: 'No trusted time yet; go online once so a signed server time anchors the clock.',
  },
  KEY_NOT_USABLE: {
    number: 6064,
    hint: 'The key is not usable right now; see the session key statuses.',
  },
  LICENSE_NOT_YET_VALID: {
    number: 6065,
    hint: 'The license starts later than the trusted time; check the server clock.',
  },
  SESSION_CLOSED: { number: 6066, hint: 'The session was closed; open a new one.' },
  DOMAIN_RENEWAL_REQUIRED: {
    number: 6067,
    hint: 'The domain key changed; the agent renews its domain membership and retries.',
  },

  // 7600-7619: the fleet channel (revocation lists and commands over MQTT).
  FLEET_PAYLOAD_TOO_LARGE: {
    number: 7600,
    hint: 'A fleet message exceeds the size limit; it was dropped.',
  },
  FLEET_SIGNER_NOT_PUBLISHER: {
    number: 7601,
    hint: 'A fleet message is not signed by the operator fleet publisher; it was ignored.',
  },
  FLEET_LIST_OUTDATED: {
    number: 7602,
    hint: 'The revocation list is not newer than the one applied; nothing changed.',
  },
  FLEET_COMMAND_EXPIRED: { number: 7603, hint: 'The fleet command expired before it arrived.' },
  FLEET_WRONG_DEVICE: {
    number: 7604,
    hint: 'The fleet command is addressed to another device; it was ignored.',
  },
  FLEET_LIST_STALE: {
    number: 7605,
    hint: 'The revocation list is past its next update: new licenses are refused until a fresh list arrives; check the broker and the head-end pull URL.',
  },

  // 7500-7549: the device's persistent license store and agent configuration.
  STORE_TAMPERED: {
    number: 7500,
    hint: 'A license file was edited or damaged; it is ignored. Acquire the license again.',
  },
  STORE_FOREIGN_DEVICE: {
    number: 7501,
    hint: 'The license store was made on another device; it cannot be used here.',
  },
  STORE_ROLLBACK: {
    number: 7502,
    hint: 'An older copy of the license store was restored; the rolled-back entries are refused.',
  },
  STORE_CORRUPT: {
    number: 7503,
    hint: 'The license store index is unreadable; it is rebuilt from the license files.',
  },
  STORE_LOCKED: {
    number: 7504,
    hint: 'Another keywarden process holds the license store; stop it first.',
  },
  STORE_TOO_LARGE: { number: 7505, hint: 'A license file exceeds the size limit.' },
  CONFIG_INVALID: {
    number: 7520,
    hint: 'Fix the agent configuration file; see docs/configuration.md.',
  },

  // 7400-7499: reference head-end.
  HEADEND_BAD_REQUEST: { number: 7400, hint: 'The request is not a valid protocol message.' },
  HEADEND_BODY_TOO_LARGE: { number: 7401, hint: 'The request body exceeds the size limit.' },
  HEADEND_UNSUPPORTED_MEDIA_TYPE: {
    number: 7402,
    hint: 'POST bodies are application/x-protobuf.',
  },
  HEADEND_RATE_LIMITED: {
    number: 7403,
    hint: 'Too many provisioning requests for this hardware; wait and retry.',
  },
  HEADEND_TIMEOUT: { number: 7404, hint: 'The request was not received in time; retry.' },
  HEADEND_NOT_FOUND: { number: 7405, hint: 'No such endpoint or method; see docs/protocol.md.' },
  DEVICE_REVOKED: { number: 7406, hint: 'The device is revoked; contact the operator.' },
  AGENT_VERSION_TOO_OLD: {
    number: 7407,
    hint: 'Update the agent to the minimum version the server names, then individualize.',
  },
  UNKNOWN_KEY: { number: 7408, hint: 'The head-end holds no key for a requested KID.' },
  MASTER_KEY_MISSING: {
    number: 7409,
    hint: 'Set KEYWARDEN_MASTER_KEY (32 bytes, hex or base64) or restore DIR/master.key.',
  },
  MASTER_KEY_WRONG: {
    number: 7410,
    hint: 'The master key does not open this data dir; use the key it was created with.',
  },
  STORE_FAILED: { number: 7411, hint: 'The head-end database failed; check the data dir.' },
  HEADEND_DEPENDENCY_MISSING: {
    number: 7412,
    hint: 'Install the head-end dependencies: npm install better-sqlite3 @peculiar/x509.',
  },
  UNKNOWN_DEVICE: { number: 7413, hint: 'No device with that id is registered.' },
  UNKNOWN_POLICY: { number: 7414, hint: 'Create the policy first: keywarden headend policy set.' },
  HEADEND_BAD_POLICY: { number: 7415, hint: 'See keywarden headend policy set --help.' },
  HEADEND_INTERNAL: { number: 7416, hint: 'The head-end failed; see its log.' },
  CONTENT_KEY_EXISTS: {
    number: 7417,
    hint: 'The KID already has a different key; content keys never change.',
  },
  DEVICE_NOT_ENTITLED: {
    number: 7418,
    hint: 'The content or policy refuses this device (security level, application).',
  },
} as const satisfies Record<string, ErrorSpec>;

/** Symbolic name of a catalogued error. */
export type ErrorCode = keyof typeof ERRORS;
