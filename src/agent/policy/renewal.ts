import type { keywarden } from '../../protocol/generated/proto.js';
import type { PolicyOptions, RenewalHistory } from './types.js';
import { durationMs, earliest, timeWindows, type TimeWindows } from './windows.js';

/** Default retry interval when the policy's is 0. */
export const DEFAULT_RETRY_INTERVAL_MS = 60_000;
/** Default lead time for root (subscription) renewals. */
export const DEFAULT_ROOT_RENEWAL_LEAD_MS = 3_600_000;

/** When to renew, and how long a failing renewal may be bridged. */
export interface RenewalPlan {
  /** When the next renewal is due, ms (undefined: never, e.g. can_renew is false). */
  readonly renewAtMs?: number;
  /** The last attempt failed and nothing succeeded since: retrying on the retry interval. */
  readonly failing: boolean;
  /**
   * End of the recovery window: validity end + renewal_recovery_duration_s. Playback may go
   * on until then while renewals fail. Undefined when there is no such window.
   */
  readonly recoveryEndMs?: number;
}

/** Options of {@link renewalPlan}. */
export interface RenewalPlanOptions extends PolicyOptions {
  /** For root licenses: renew this long before they end (capped at half their validity). */
  readonly leadMs?: number;
}

/**
 * Plans the renewal of `license` (pure). The schedule counts renewal_delay_s from the
 * later of issue and the last success, and is never later than the validity end; a root
 * license is also renewed `leadMs` before it ends. After a failed attempt the next one is
 * renewal_retry_interval_s later. Without can_renew there is no plan and no recovery.
 */
export function renewalPlan(
  license: keywarden.v1.ILicense,
  history: RenewalHistory = {},
  options: RenewalPlanOptions = {},
  windows: TimeWindows = timeWindows(license),
): RenewalPlan {
  const p = license.policy ?? {};
  if (!p.canRenew) return { failing: false };
  const base = Math.max(windows.issuedAtMs ?? 0, history.lastSuccessMs ?? 0);
  const failing =
    history.lastFailureMs !== undefined &&
    history.lastFailureMs >= base &&
    (history.lastSuccessMs === undefined || history.lastFailureMs > history.lastSuccessMs);
  const recovery = durationMs(p.renewalRecoveryDurationS, 'renewal_recovery_duration_s');
  const recoveryEndMs =
    recovery !== undefined && windows.validityEndMs !== undefined
      ? windows.validityEndMs + recovery
      : undefined;
  if (failing) {
    const retry =
      durationMs(p.renewalRetryIntervalS, 'renewal_retry_interval_s') ??
      options.defaultRetryIntervalMs ??
      DEFAULT_RETRY_INTERVAL_MS;
    return { renewAtMs: history.lastFailureMs! + retry, failing, recoveryEndMs };
  }
  const delay = durationMs(p.renewalDelayS, 'renewal_delay_s');
  const scheduled = earliest(
    delay === undefined || base === 0 ? undefined : base + delay,
    windows.validityEndMs,
    options.leadMs === undefined ? undefined : leadRenewAt(windows, options.leadMs),
  );
  return { renewAtMs: scheduled, failing, recoveryEndMs };
}

/** `leadMs` before the end of validity (or rental), capped at half the span from issue. */
function leadRenewAt(w: TimeWindows, leadMs: number): number | undefined {
  const end = earliest(w.validityEndMs, w.rentalEndMs);
  if (end === undefined) return undefined;
  const span = w.issuedAtMs === undefined ? Number.POSITIVE_INFINITY : end - w.issuedAtMs;
  return end - Math.min(Math.max(0, leadMs), Math.max(0, span / 2));
}

/**
 * When to renew a subscription root: `leadMs` before it ends (so leaves never lapse),
 * or earlier if its policy's renewal delay says so; retries follow the retry interval.
 * The lead is capped at half the root's validity, so a short root is not renewed in a
 * loop. Undefined when the root cannot be renewed or never ends.
 */
export function rootRenewAt(
  root: keywarden.v1.ILicense,
  leadMs: number = DEFAULT_ROOT_RENEWAL_LEAD_MS,
  history: RenewalHistory = {},
  options: PolicyOptions = {},
): number | undefined {
  return renewalPlan(root, history, { ...options, leadMs }).renewAtMs;
}
