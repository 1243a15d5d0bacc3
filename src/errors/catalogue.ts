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
  PROTOCOL_ERROR: { number: 6010, hint: 'The peer sent a message that breaks the protocol.' },
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

  // 7200-7299: command line and configuration.
  CLI_USAGE: { number: 7200, hint: 'See keywarden --help.' },
  CLI_BAD_KEY: { number: 7201, hint: 'A key is KID:KEY or KEY, 16 bytes each, in hex or base64.' },
  IO_FAILED: { number: 7202, hint: 'A file could not be read or written; check the path.' },
} as const satisfies Record<string, ErrorSpec>;

/** Symbolic name of a catalogued error. */
export type ErrorCode = keyof typeof ERRORS;
