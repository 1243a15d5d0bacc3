import { kwError } from '../../errors/index.js';
import type { keywarden } from '../../protocol/generated/proto.js';

/**
 * The time windows of a license, ms since the epoch. An undefined end means that rule sets
 * no limit (its duration is 0). Whichever window ends first wins.
 */
export interface TimeWindows {
  /** License.issued_at_ms (server_time_ms when absent); undefined when neither is set. */
  readonly issuedAtMs: number | undefined;
  /** issued + policy.license_duration_s. */
  readonly licenseEndMs?: number;
  /** License.expires_at_ms. */
  readonly expiresAtMs?: number;
  /** issued + policy.rental_duration_s. */
  readonly rentalEndMs?: number;
  /** policy.playback_duration_s in ms (counted from the first play). */
  readonly playbackDurationMs?: number;
  /** first play + playback duration; undefined before the first play. */
  readonly playbackEndMs?: number;
  /** min(license end, expires_at): the validity a renewal extends (and recovery bridges). */
  readonly validityEndMs?: number;
  /** Which of the two ends validity first. */
  readonly validityRule?: 'license-duration' | 'expires-at';
}

/** The smallest defined value, or undefined. */
export function earliest(...values: readonly (number | undefined)[]): number | undefined {
  let min: number | undefined;
  for (const v of values) if (v !== undefined && (min === undefined || v < min)) min = v;
  return min;
}

/** A policy duration (seconds, 0 = no limit) in ms; LICENSE_PROCESSING_FAILED when invalid. */
export function durationMs(value: number | null | undefined, field: string): number | undefined {
  const s = Number(value ?? 0);
  if (!Number.isFinite(s) || s < 0)
    throw kwError('LICENSE_PROCESSING_FAILED', `the license's ${field} is invalid`, {
      field,
      value: s,
    });
  return s === 0 ? undefined : s * 1000;
}

function timestamp(value: number | null | undefined, field: string): number | undefined {
  const ms = Number(value ?? 0);
  if (!Number.isFinite(ms) || ms < 0)
    throw kwError('LICENSE_PROCESSING_FAILED', `the license's ${field} is invalid`, {
      field,
      value: ms,
    });
  return ms === 0 ? undefined : ms;
}

/**
 * Computes the windows of `license` given the first play time (trusted ms, undefined
 * before the first play). A license whose durations count from an issue time it does not
 * carry, or with negative values, is LICENSE_PROCESSING_FAILED.
 */
export function timeWindows(license: keywarden.v1.ILicense, firstPlayMs?: number): TimeWindows {
  const p = license.policy ?? {};
  const issuedAtMs =
    timestamp(license.issuedAtMs, 'issued_at_ms') ??
    timestamp(license.serverTimeMs, 'server_time_ms');
  const licenseDuration = durationMs(p.licenseDurationS, 'license_duration_s');
  const rentalDuration = durationMs(p.rentalDurationS, 'rental_duration_s');
  const playbackDurationMs = durationMs(p.playbackDurationS, 'playback_duration_s');
  if (issuedAtMs === undefined && (licenseDuration ?? rentalDuration) !== undefined)
    throw kwError('LICENSE_PROCESSING_FAILED', 'the license has durations but no issue time', {
      licenseId: license.id,
    });
  const from = (d: number | undefined): number | undefined =>
    d === undefined || issuedAtMs === undefined ? undefined : issuedAtMs + d;
  const licenseEndMs = from(licenseDuration);
  const expiresAtMs = timestamp(license.expiresAtMs, 'expires_at_ms');
  const validityEndMs = earliest(licenseEndMs, expiresAtMs);
  return {
    issuedAtMs,
    licenseEndMs,
    expiresAtMs,
    rentalEndMs: from(rentalDuration),
    playbackDurationMs,
    playbackEndMs:
      firstPlayMs !== undefined && playbackDurationMs !== undefined
        ? firstPlayMs + playbackDurationMs
        : undefined,
    validityEndMs,
    validityRule:
      validityEndMs === undefined
        ? undefined
        : validityEndMs === licenseEndMs
          ? 'license-duration'
          : 'expires-at',
  };
}
