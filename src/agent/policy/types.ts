import type { ErrorCode, KeywardenError } from '../../errors/index.js';
import type { keywarden } from '../../protocol/generated/proto.js';

/**
 * A key's status, after W3C EME's MediaKeyStatus, plus 'revoked' (fleet revocation).
 * docs/policy.md "Statuses" maps every rule to one.
 */
export type KeyStatus =
  | 'usable'
  | 'expired'
  | 'released'
  | 'output-restricted'
  | 'status-pending'
  | 'internal-error'
  | 'revoked';

/** The output monitor's verdict for a license's output protection (issue 6). */
export type OutputVerdict = 'allowed' | 'restricted' | 'unknown';

/** An output verdict with the monitor's own error (e.g. an HDCP code) to report. */
export interface OutputCheck {
  /** The verdict. */
  readonly verdict: OutputVerdict;
  /** What to report when not 'allowed' (default KEY_NOT_USABLE). */
  readonly error?: KeywardenError;
}

/**
 * Output protection input: a verdict, or a callback asked only when every other rule
 * passed (so a costly output probe runs only when it can matter).
 */
export type OutputInput =
  | OutputVerdict
  | OutputCheck
  | ((license: keywarden.v1.ILicense, kid?: string) => OutputVerdict | OutputCheck);

/** What the caller remembers of a license's renewals (trusted times, ms). */
export interface RenewalHistory {
  /** When the last renewal succeeded. */
  readonly lastSuccessMs?: number;
  /** When the last renewal attempt failed (server unreachable or refused). */
  readonly lastFailureMs?: number;
}

/** A license and the usage state the caller persists for it. */
export interface LicenseState {
  /** The license as received (verified). */
  readonly license: keywarden.v1.ILicense;
  /** Trusted time of the first play, ms; undefined until then. */
  readonly firstPlayMs?: number;
  /** Renewal attempts. */
  readonly renewal?: RenewalHistory;
  /** The license was released (by the application, or a RELEASE went out). */
  readonly released?: boolean;
  /** The operator revoked the license or one of its keys (fleet). */
  readonly revoked?: boolean;
}

/** Facts about the device and the consuming application. */
export interface DeviceFacts {
  /** The key vault's protection level (protocol enum). */
  readonly securityLevel: keywarden.v1.SecurityLevel;
  /** The application asking to use the keys (application-restricted media). */
  readonly applicationId?: string;
}

/** Tunables of the engine. */
export interface PolicyOptions {
  /** A license issued this far in the future still counts as valid (server skew). Default 5 min. */
  readonly notBeforeSkewMs?: number;
  /** Retry interval when the policy says 0. Default 60 s. */
  readonly defaultRetryIntervalMs?: number;
  /** Renew root licenses this long before they end (capped at half their validity). Default 1 h. */
  readonly rootRenewalLeadMs?: number;
}

/** Everything {@link evaluate} decides on. Pure data: every time is an argument. */
export interface PolicyInput extends LicenseState {
  /** Trusted time (SecureClock), ms; undefined while the clock is untrusted. */
  readonly nowMs: number | undefined;
  /** The trusted time is an estimate carried over a reboot (SecureClock status). */
  readonly clockEstimated?: boolean;
  /** The device and application. */
  readonly device: DeviceFacts;
  /** Output protection verdict; absent means "not checked" (no output monitor). */
  readonly output?: OutputInput;
  /** The key asked about (hex KID), so the output verdict can follow its track type. */
  readonly kid?: string;
  /** Root licenses present on the device, by license id (for leaves). */
  readonly roots?: ReadonlyMap<string, LicenseState>;
  /** Tunables. */
  readonly options?: PolicyOptions;
}

/** The rule a reason comes from. */
export type PolicyRule =
  | 'revoked'
  | 'released'
  | 'malformed'
  | 'can-play'
  | 'security-level'
  | 'application'
  | 'clock'
  | 'not-yet-valid'
  | 'license-duration'
  | 'expires-at'
  | 'rental'
  | 'playback'
  | 'renewal'
  | 'chain'
  | 'output-protection';

/** One finding of {@link evaluate}. */
export interface PolicyReason {
  /** The rule. */
  readonly rule: PolicyRule;
  /** True when it stops playback; false for notes (recovery window, estimated clock). */
  readonly blocking: boolean;
  /** The catalogue code of a blocking reason. */
  readonly code?: ErrorCode;
  /** What happened, for logs and UIs. */
  readonly message: string;
}

/** The verdict on one license. */
export interface Evaluation {
  /** The key status for every key of the license. */
  readonly status: KeyStatus;
  /** Why it is not usable (the first blocking reason, as a throwable coded error). */
  readonly error?: KeywardenError;
  /** When usable: playback must stop by then (undefined: no limit). */
  readonly playableUntilMs?: number;
  /** When the next renewal is due (undefined: none). */
  readonly renewAtMs?: number;
  /** Every finding, blocking or not, in rule order. */
  readonly reasons: readonly PolicyReason[];
  /**
   * The verdict rests on a clock estimated across a reboot: an 'expired' may be undone by
   * the next server anchor, so do not delete the license on it.
   */
  readonly provisional: boolean;
}
