import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY_INTERVAL_MS,
  evaluate,
  renewalPlan,
  rootRenewAt,
  type PolicyInput,
} from '../../../../src/agent/policy/index.js';
import { DAY, DEVICE, HOUR, license, MIN, root, T0 } from './license-fixtures.js';

/** Renewable: 4 h validity, renew after 1 h, retry every 10 min, 30 min recovery. */
const renewable = license({
  canRenew: true,
  licenseDurationS: 4 * 3600,
  renewalDelayS: 3600,
  renewalRetryIntervalS: 600,
  renewalRecoveryDurationS: 1800,
});
const at = (nowMs: number, more: Partial<PolicyInput> = {}) =>
  evaluate({ license: renewable, nowMs, device: DEVICE, ...more });

describe('renewal schedule', () => {
  it('renews renewal_delay after issue', () => {
    expect(renewalPlan(renewable)).toEqual({
      renewAtMs: T0 + HOUR,
      failing: false,
      recoveryEndMs: T0 + 4 * HOUR + 30 * MIN,
    });
    expect(at(T0).renewAtMs).toBe(T0 + HOUR);
  });

  it('retries on the retry interval after a failure', () => {
    const plan = renewalPlan(renewable, { lastFailureMs: T0 + HOUR });
    expect(plan).toMatchObject({ renewAtMs: T0 + HOUR + 10 * MIN, failing: true });
  });

  it('counts the delay from the last success, never past the validity end', () => {
    const history = { lastSuccessMs: T0 + HOUR, lastFailureMs: T0 + 50 * MIN };
    expect(renewalPlan(renewable, history)).toMatchObject({
      renewAtMs: T0 + 2 * HOUR,
      failing: false,
    });
    expect(renewalPlan(renewable, { lastSuccessMs: T0 + 3.5 * HOUR }).renewAtMs).toBe(
      T0 + 4 * HOUR,
    );
  });

  it('renews at the validity end when the policy names no delay', () => {
    const lic = license({ canRenew: true, licenseDurationS: 7200 });
    expect(renewalPlan(lic).renewAtMs).toBe(T0 + 2 * HOUR);
    expect(renewalPlan(license({ canRenew: true })).renewAtMs).toBeUndefined();
  });

  it('uses the default retry interval when the policy says 0', () => {
    const lic = license({ canRenew: true, licenseDurationS: 7200, renewalDelayS: 60 });
    expect(renewalPlan(lic, { lastFailureMs: T0 + MIN }).renewAtMs).toBe(
      T0 + MIN + DEFAULT_RETRY_INTERVAL_MS,
    );
    expect(
      renewalPlan(lic, { lastFailureMs: T0 + MIN }, { defaultRetryIntervalMs: 5000 }).renewAtMs,
    ).toBe(T0 + MIN + 5000);
  });

  it('has no plan and no recovery without can_renew', () => {
    const lic = license({ ...renewable.policy, canRenew: false });
    expect(renewalPlan(lic, { lastFailureMs: T0 + HOUR })).toEqual({ failing: false });
    const ev = evaluate({ license: lic, nowMs: T0 + 4 * HOUR, device: DEVICE });
    expect(ev.status).toBe('expired');
    expect(ev.error?.code).toBe('LICENSE_EXPIRED');
    expect(ev.renewAtMs).toBeUndefined();
  });
});

describe('renewal recovery window', () => {
  const failing = { renewal: { lastFailureMs: T0 + 4 * HOUR - MIN } };

  it('keeps playing inside the window while renewals fail', () => {
    const ev = at(T0 + 4 * HOUR + 10 * MIN, failing);
    expect(ev.status).toBe('usable');
    expect(ev.playableUntilMs).toBe(T0 + 4 * HOUR + 30 * MIN);
    expect(ev.reasons).toEqual([expect.objectContaining({ rule: 'renewal', blocking: false })]);
    expect(ev.renewAtMs).toBe(T0 + 4 * HOUR + 9 * MIN);
  });

  it('stops at the end of the window with RENEWAL_FAILED', () => {
    const ev = at(T0 + 4 * HOUR + 30 * MIN, failing);
    expect(ev.status).toBe('expired');
    expect(ev.error).toMatchObject({ code: 'RENEWAL_FAILED', number: 6058 });
    expect(ev.renewAtMs).toBeDefined(); // a late renewal can still revive it
  });

  it('stops with LICENSE_EXPIRED when no renewal ever failed', () => {
    expect(at(T0 + 5 * HOUR).error?.code).toBe('LICENSE_EXPIRED');
  });

  it('never extends a rental', () => {
    const rental = license({ ...renewable.policy, rentalDurationS: 4 * 3600 });
    const ev = evaluate({
      license: rental,
      nowMs: T0 + 4 * HOUR + MIN,
      device: DEVICE,
      ...failing,
    });
    expect(ev.status).toBe('expired');
    expect(ev.reasons.filter((r) => r.blocking).map((r) => r.rule)).toEqual(['rental']);
    expect(evaluate({ license: rental, nowMs: T0, device: DEVICE }).playableUntilMs).toBe(
      T0 + 4 * HOUR,
    );
  });
});

describe('root (subscription) renewal', () => {
  it('renews a lead time before the root ends', () => {
    const r = root('sub-1', 30 * 86400);
    expect(rootRenewAt(r)).toBe(T0 + 30 * DAY - HOUR);
    expect(rootRenewAt(r, DAY)).toBe(T0 + 29 * DAY);
  });

  it('caps the lead at half the validity, so a short root is not renewed in a loop', () => {
    expect(rootRenewAt(root('sub-1', 3600), DAY)).toBe(T0 + 30 * MIN);
  });

  it('prefers an earlier renewal delay, retries failures, and needs can_renew', () => {
    const delayed = root('sub-1', 30 * 86400);
    delayed.policy = { ...delayed.policy, renewalDelayS: 86400 };
    expect(rootRenewAt(delayed)).toBe(T0 + DAY);
    const failing = { lastFailureMs: T0 + 30 * DAY - HOUR };
    expect(rootRenewAt(root('sub-1', 30 * 86400), HOUR, failing)).toBe(
      T0 + 30 * DAY - HOUR + DEFAULT_RETRY_INTERVAL_MS,
    );
    const fixed = root('sub-1', 30 * 86400);
    fixed.policy = { ...fixed.policy, canRenew: false };
    expect(rootRenewAt(fixed)).toBeUndefined();
    const endless = root('sub-1', 0);
    expect(rootRenewAt(endless)).toBeUndefined();
  });

  it('puts the lead into a root evaluation', () => {
    const ev = evaluate({
      license: root('sub-1', 7 * 86400),
      nowMs: T0,
      device: DEVICE,
      options: { rootRenewalLeadMs: 6 * HOUR },
    });
    expect(ev).toMatchObject({ status: 'usable', renewAtMs: T0 + 7 * DAY - 6 * HOUR });
    expect(
      evaluate({ license: root('sub-1', 7 * 86400), nowMs: T0, device: DEVICE }).renewAtMs,
    ).toBe(T0 + 7 * DAY - HOUR);
  });
});
