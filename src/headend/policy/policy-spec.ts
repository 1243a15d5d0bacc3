/**
 * The head-end's policy model: what the license server puts in a license's rights. Stored as
 * JSON in the policies table, named, and assigned to content by KID. Durations are seconds;
 * 0 means "no limit".
 */
export interface PolicySpec {
  readonly canPlay: boolean;
  readonly canPersist: boolean;
  readonly canRenew: boolean;
  /** How long the license is valid after issue. */
  readonly licenseDuration: number;
  /** Rental window after issue (N in "N after issue or M after first play"). */
  readonly rentalDuration: number;
  /** Playback window after first play (M). */
  readonly playbackDuration: number;
  /** Renew this long after issue. */
  readonly renewalDelay: number;
  /** Retry interval after a failed renewal. */
  readonly renewalRetryInterval: number;
  /** Grace window after expiry while the server cannot be reached. */
  readonly renewalRecoveryDuration: number;
  /** Where renewals go; empty: the license URL. */
  readonly renewalUrl: string;
  /**
   * Custom data put in every license issued under this policy, for the application (e.g.
   * the content URL of a pre-delivered title). `{contentId}` and `{kid}` are replaced.
   */
  readonly licenseCustomData: string;
  /** Output protection levels (DESIGN.md tables). 0 is "not set" (unrestricted). */
  readonly opl: OutputProtectionLevels;
  /** Explicit HDCP version required on digital outputs: '' (none), '1.4', '2.2', '2.3'. */
  readonly hdcp: string;
  /** HDCP content type 1 required. */
  readonly hdcpType1: boolean;
  /** Analog video outputs must be off. */
  readonly disableAnalog: boolean;
  /** Explicit CGMS-A requirement: 'none', 'copy-free', 'copy-once', 'copy-never'. */
  readonly cgmsa: string;
  /** Maximum decoded picture width in pixels; 0 = no cap. */
  readonly maxWidth: number;
  /** Maximum decoded picture height in pixels; 0 = no cap. */
  readonly maxHeight: number;
  /** Minimum SecurityLevel (protocol enum number; 0 = any). */
  readonly minSecurityLevel: number;
  /** Application ids allowed to consume the keys; empty = any. */
  readonly allowedApplications: readonly string[];
  /** Keys wrap to the account's domain key; the device must be a member. */
  readonly domainBound: boolean;
  /** Root/leaf chain role. */
  readonly chain: 'none' | 'root' | 'leaf';
  /** For a leaf: ids of the roots (subscriptions) whose keys wrap its content keys. */
  readonly roots: readonly string[];
  /**
   * For a root policy (`chain: 'root'`): a broadcast root. Its root key is the same for
   * every holder instead of derived per device or domain, so one leaf license embedded in a
   * live stream opens on every subscribed device; each device still receives that key
   * wrapped to its own (or its domain's) key in its root license (docs/key-rotation.md).
   */
  readonly broadcast: boolean;
  /** When set, requests for this content answer 6007 SERVICE_SPECIFIC instead of a license. */
  readonly serviceError: ServiceErrorSpec | null;
}

/** Output protection levels (PlayReady-style minimum levels). */
export interface OutputProtectionLevels {
  readonly analogVideo: number;
  readonly compressedDigitalVideo: number;
  readonly uncompressedDigitalVideo: number;
  readonly compressedDigitalAudio: number;
  readonly uncompressedDigitalAudio: number;
}

/** A policy that answers 6007 SERVICE_SPECIFIC with custom data instead of a license. */
export interface ServiceErrorSpec {
  readonly message: string;
  readonly customData: string;
}

/** Streaming defaults: playable, not persistable, renewable, one day. */
export const DEFAULT_POLICY: PolicySpec = {
  canPlay: true,
  canPersist: false,
  canRenew: true,
  licenseDuration: 86400,
  rentalDuration: 0,
  playbackDuration: 0,
  renewalDelay: 0,
  renewalRetryInterval: 0,
  renewalRecoveryDuration: 0,
  renewalUrl: '',
  licenseCustomData: '',
  opl: {
    analogVideo: 0,
    compressedDigitalVideo: 0,
    uncompressedDigitalVideo: 0,
    compressedDigitalAudio: 0,
    uncompressedDigitalAudio: 0,
  },
  hdcp: '',
  hdcpType1: false,
  disableAnalog: false,
  cgmsa: 'none',
  maxWidth: 0,
  maxHeight: 0,
  minSecurityLevel: 0,
  allowedApplications: [],
  domainBound: false,
  chain: 'none',
  roots: [],
  broadcast: false,
  serviceError: null,
};

/** Name of the policy used for content that has none assigned. */
export const DEFAULT_POLICY_NAME = 'default';
