import {
  isKeywardenError,
  kwError,
  type ErrorCode,
  type KeywardenError,
} from '../../errors/index.js';
import type { keywarden } from '../../protocol/generated/proto.js';
import { DEFAULT_ROOT_RENEWAL_LEAD_MS, renewalPlan, type RenewalPlan } from './renewal.js';
import { checkDevice } from './rights.js';
import type {
  Evaluation,
  KeyStatus,
  OutputCheck,
  PolicyInput,
  PolicyReason,
  PolicyRule,
} from './types.js';
import { earliest, timeWindows, type TimeWindows } from './windows.js';

/** Default tolerance for a license issued slightly in the future (server clock skew). */
export const DEFAULT_NOT_BEFORE_SKEW_MS = 300_000;

const iso = (ms: number): string => new Date(ms).toISOString();

/** Collects reasons; the first blocking one decides status and error (rules run in priority order). */
class Findings {
  readonly reasons: PolicyReason[] = [];
  status: KeyStatus = 'usable';
  error: KeywardenError | undefined;

  block(
    rule: PolicyRule,
    status: KeyStatus,
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    cause?: unknown,
  ): void {
    this.reasons.push({ rule, blocking: true, code, message });
    if (this.error) return;
    this.status = status;
    this.error = kwError(code, message, details, cause);
  }

  note(rule: PolicyRule, message: string): void {
    this.reasons.push({ rule, blocking: false, message });
  }
}

/**
 * Decides whether the keys of a license may be used now (pure: no I/O, no clock; every
 * time is in `input`). Rules, in priority order: revoked, released, well-formed, can_play,
 * security level, application, trusted clock, not-yet-valid, rental and playback windows,
 * validity with renewal recovery, root chain, output protection. docs/policy.md has the
 * table. The output callback is asked only when every other rule passed.
 */
export function evaluate(input: PolicyInput): Evaluation {
  const f = new Findings();
  const { license, nowMs } = input;
  const licenseId = license.id ?? '';
  if (input.revoked)
    f.block('revoked', 'revoked', 'LICENSE_REVOKED', 'the operator revoked this license', {
      licenseId,
    });
  if (input.released)
    f.block('released', 'released', 'LICENSE_RELEASED', 'the license was released', {
      licenseId,
    });
  const timing = planTiming(f, input);
  if (!license.policy?.canPlay)
    f.block(
      'can-play',
      'output-restricted',
      'PLAYBACK_NOT_ALLOWED',
      'the license does not grant playback',
      { licenseId },
    );
  for (const r of checkDevice(license, input.device))
    f.block(r.rule, 'output-restricted', r.code, r.message, { licenseId });
  if (nowMs === undefined)
    f.block('clock', 'status-pending', 'CLOCK_UNTRUSTED', 'there is no trusted time yet');
  else if (input.clockEstimated)
    f.note('clock', 'trusted time is estimated across a reboot until the next server contact');
  if (nowMs !== undefined && timing) checkTime(f, input, timing, nowMs);
  const rootsUntilMs = checkChain(f, input);
  if (!f.error) checkOutput(f, input.license, input.output, input.kid);
  return conclude(f, input, timing, rootsUntilMs);
}

interface Timing {
  readonly windows: TimeWindows;
  readonly plan: RenewalPlan;
}

function planTiming(f: Findings, input: PolicyInput): Timing | undefined {
  const { license, options = {} } = input;
  const leadMs = license.policy?.chain?.isRoot
    ? (options.rootRenewalLeadMs ?? DEFAULT_ROOT_RENEWAL_LEAD_MS)
    : undefined;
  try {
    const windows = timeWindows(license, input.firstPlayMs);
    return { windows, plan: renewalPlan(license, input.renewal, { ...options, leadMs }, windows) };
  } catch (err) {
    if (!isKeywardenError(err)) throw err;
    f.block('malformed', 'internal-error', err.code, err.message, { ...err.details });
    return undefined;
  }
}

function checkTime(f: Findings, input: PolicyInput, t: Timing, nowMs: number): void {
  const w = t.windows;
  const skew = input.options?.notBeforeSkewMs ?? DEFAULT_NOT_BEFORE_SKEW_MS;
  if (w.issuedAtMs !== undefined && w.issuedAtMs > nowMs + skew) {
    f.block(
      'not-yet-valid',
      'status-pending',
      'LICENSE_NOT_YET_VALID',
      `the license is valid from ${iso(w.issuedAtMs)}; trusted time is ${iso(nowMs)}`,
      { issuedAtMs: w.issuedAtMs, nowMs },
    );
    return;
  }
  if (w.rentalEndMs !== undefined && nowMs >= w.rentalEndMs)
    f.block('rental', 'expired', 'LICENSE_EXPIRED', `the rental ended at ${iso(w.rentalEndMs)}`, {
      endMs: w.rentalEndMs,
    });
  if (w.playbackEndMs !== undefined && nowMs >= w.playbackEndMs)
    f.block(
      'playback',
      'expired',
      'LICENSE_EXPIRED',
      `the playback window ended at ${iso(w.playbackEndMs)}`,
      { endMs: w.playbackEndMs, firstPlayMs: input.firstPlayMs },
    );
  checkValidity(f, t, nowMs);
}

/** License duration / expires_at, bridged by the recovery window while renewals fail. */
function checkValidity(f: Findings, { windows: w, plan }: Timing, nowMs: number): void {
  const end = w.validityEndMs;
  if (end === undefined || nowMs < end) return;
  const recoveryEnd = plan.recoveryEndMs;
  if (recoveryEnd !== undefined && nowMs < recoveryEnd) {
    f.note(
      'renewal',
      `the license ended at ${iso(end)}; recovery window until ${iso(recoveryEnd)}`,
    );
    return;
  }
  if (plan.failing)
    f.block(
      'renewal',
      'expired',
      'RENEWAL_FAILED',
      `renewals failed and the license ended at ${iso(recoveryEnd ?? end)}`,
      { endMs: end, recoveryEndMs: recoveryEnd },
    );
  else
    f.block(
      w.validityRule ?? 'license-duration',
      'expired',
      'LICENSE_EXPIRED',
      `the license expired at ${iso(end)}`,
      { endMs: end },
    );
}

/**
 * A leaf is usable while at least one of its roots is present and usable; it then plays
 * until the last of those roots ends. Otherwise the first present root's reason, or
 * ROOT_LICENSE_MISSING. Returns the roots' end (undefined: no limit).
 */
function checkChain(f: Findings, input: PolicyInput): number | undefined {
  const chain = input.license.policy?.chain;
  const ids = chain && !chain.isRoot ? (chain.rootLicenseIds ?? []) : [];
  if (ids.length === 0) return undefined;
  const verdicts = ids.map((id) => ({ id, ev: rootVerdict(id, input) }));
  const usable = verdicts.filter((v) => v.ev?.status === 'usable');
  if (usable.length > 0) {
    f.note('chain', `valid root licenses: ${usable.map((v) => v.id).join(', ')}`);
    const ends = usable.map((v) => v.ev?.playableUntilMs);
    return ends.includes(undefined) ? undefined : Math.max(...(ends as number[]));
  }
  const present = verdicts.find((v) => v.ev?.error);
  if (present?.ev?.error) {
    const { status, error } = present.ev;
    f.block('chain', status, error.code, `root license ${present.id}: ${error.message}`, {
      ...error.details,
      rootLicenseId: present.id,
    });
  } else {
    f.block(
      'chain',
      'status-pending',
      'ROOT_LICENSE_MISSING',
      `none of the root licenses ${ids.join(', ')} is on this device`,
      { roots: ids },
    );
  }
  return undefined;
}

/** Evaluates root `id` as the device holds it; undefined when absent or not a root. */
function rootVerdict(id: string, input: PolicyInput): Evaluation | undefined {
  const state = input.roots?.get(id);
  if (!state || state.license.id !== id || !state.license.policy?.chain?.isRoot) return undefined;
  return evaluate({
    ...state,
    nowMs: input.nowMs,
    clockEstimated: input.clockEstimated,
    device: input.device,
    options: input.options,
  });
}

function hasOutputRequirements(license: keywarden.v1.ILicense): boolean {
  const op = license.policy?.outputProtection;
  return op ? Object.values(op).some((v) => Boolean(v)) : false;
}

function checkOutput(
  f: Findings,
  license: keywarden.v1.ILicense,
  output: PolicyInput['output'],
  kid?: string,
): void {
  if (output === undefined) {
    if (hasOutputRequirements(license))
      f.note('output-protection', 'output protection is not checked (no output monitor)');
    return;
  }
  let check: OutputCheck;
  try {
    const v = typeof output === 'function' ? output(license, kid) : output;
    check = typeof v === 'string' ? { verdict: v } : v;
  } catch (err) {
    f.block(
      'output-protection',
      'internal-error',
      'KEY_NOT_USABLE',
      'the output check failed',
      {},
      err,
    );
    return;
  }
  if (check.verdict === 'allowed') return;
  const restricted = check.verdict === 'restricted';
  f.block(
    'output-protection',
    restricted ? 'output-restricted' : 'status-pending',
    check.error?.code ?? 'KEY_NOT_USABLE',
    check.error?.message ??
      (restricted
        ? "the outputs do not meet the license's output protection"
        : 'the output protection state is not known yet'),
    { ...check.error?.details },
  );
}

function conclude(
  f: Findings,
  input: PolicyInput,
  timing: Timing | undefined,
  rootsUntilMs: number | undefined,
): Evaluation {
  const dead = f.status === 'revoked' || f.status === 'released' || f.status === 'internal-error';
  const renewAtMs = dead ? undefined : timing?.plan.renewAtMs;
  const playableUntilMs =
    f.status === 'usable' && timing && input.nowMs !== undefined
      ? playableUntil(timing, input.nowMs, rootsUntilMs)
      : undefined;
  return {
    status: f.status,
    ...(f.error && { error: f.error }),
    ...(playableUntilMs !== undefined && { playableUntilMs }),
    ...(renewAtMs !== undefined && { renewAtMs }),
    reasons: f.reasons,
    provisional: input.clockEstimated === true && f.status === 'expired',
  };
}

/**
 * The latest time playback may go on without a new license: validity (bridged by the
 * recovery window), rental, playback window (counted from now when not started yet), roots.
 */
function playableUntil(
  { windows: w, plan }: Timing,
  nowMs: number,
  rootsUntilMs: number | undefined,
): number | undefined {
  const validity =
    w.validityEndMs === undefined ? undefined : (plan.recoveryEndMs ?? w.validityEndMs);
  const playback =
    w.playbackEndMs ??
    (w.playbackDurationMs === undefined ? undefined : nowMs + w.playbackDurationMs);
  return earliest(validity, w.rentalEndMs, playback, rootsUntilMs);
}
