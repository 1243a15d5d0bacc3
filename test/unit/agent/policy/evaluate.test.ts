import { describe, expect, it, vi } from 'vitest';
import { evaluate, type PolicyInput } from '../../../../src/agent/policy/index.js';
import { kwError } from '../../../../src/errors/index.js';
import { DAY, DEVICE, HOUR, license, MIN, T0, v1 } from './license-fixtures.js';

type Lic = ReturnType<typeof license>;
const at = (lic: Lic, nowMs: number | undefined, more: Partial<PolicyInput> = {}) =>
  evaluate({ license: lic, nowMs, device: DEVICE, ...more });
const rules = (ev: ReturnType<typeof evaluate>, blocking = true): string[] =>
  ev.reasons.filter((r) => r.blocking === blocking).map((r) => r.rule);

describe('evaluate: time windows', () => {
  it('treats every duration 0 as unlimited', () => {
    const ev = at(license(), T0 + 3650 * DAY);
    expect(ev.status).toBe('usable');
    expect(ev.error).toBeUndefined();
    expect(ev.playableUntilMs).toBeUndefined();
    expect(ev.renewAtMs).toBeUndefined();
    expect(ev.reasons).toEqual([]);
    expect(ev.provisional).toBe(false);
  });

  it('ends at issue + license duration (end exclusive)', () => {
    const lic = license({ licenseDurationS: 2 * 3600 });
    expect(at(lic, T0 + 2 * HOUR - 1)).toMatchObject({
      status: 'usable',
      playableUntilMs: T0 + 2 * HOUR,
    });
    const ev = at(lic, T0 + 2 * HOUR);
    expect(ev.status).toBe('expired');
    expect(ev.error).toMatchObject({ code: 'LICENSE_EXPIRED', number: 6050 });
    expect(rules(ev)).toEqual(['license-duration']);
    expect(ev.playableUntilMs).toBeUndefined();
  });

  it('applies an absolute expires_at when it comes first', () => {
    const lic = license({ licenseDurationS: 10 * 86400 }, { expiresAtMs: T0 + DAY });
    expect(at(lic, T0).playableUntilMs).toBe(T0 + DAY);
    const ev = at(lic, T0 + DAY + 1);
    expect(ev.status).toBe('expired');
    expect(rules(ev)).toEqual(['expires-at']);
  });

  describe('rental: 30 days after issue or 24 hours after first play, whichever first', () => {
    const rental = license({ rentalDurationS: 30 * 86400, playbackDurationS: 86400 });

    it('before the first play: usable, and a play starting now would get 24 h', () => {
      const now = T0 + 10 * DAY;
      expect(at(rental, now)).toMatchObject({ status: 'usable', playableUntilMs: now + DAY });
      // ...but never beyond the rental.
      expect(at(rental, T0 + 29.5 * DAY).playableUntilMs).toBe(T0 + 30 * DAY);
      expect(at(rental, T0 + 30 * DAY).status).toBe('expired');
    });

    it('first play early: the 24 h playback window ends first', () => {
      const firstPlayMs = T0 + DAY;
      expect(at(rental, T0 + DAY + 23 * HOUR, { firstPlayMs })).toMatchObject({
        status: 'usable',
        playableUntilMs: T0 + 2 * DAY,
      });
      const ev = at(rental, T0 + 2 * DAY, { firstPlayMs });
      expect(ev.status).toBe('expired');
      expect(rules(ev)).toEqual(['playback']);
      expect(ev.error?.details.firstPlayMs).toBe(firstPlayMs);
    });

    it('first play late: the 30-day rental ends first', () => {
      const firstPlayMs = T0 + 29.5 * DAY;
      expect(at(rental, T0 + 29.6 * DAY, { firstPlayMs }).playableUntilMs).toBe(T0 + 30 * DAY);
      const ev = at(rental, T0 + 30 * DAY, { firstPlayMs });
      expect(ev.status).toBe('expired');
      expect(rules(ev)).toEqual(['rental']); // the playback window would run until day 30.5
      expect(ev.error?.message).toContain('rental');
    });
  });

  it('refuses a license issued in the future beyond the skew, accepts within it', () => {
    const lic = license({}, { issuedAtMs: T0 + HOUR });
    const ev = at(lic, T0);
    expect(ev.status).toBe('status-pending');
    expect(ev.error).toMatchObject({ code: 'LICENSE_NOT_YET_VALID', number: 6065 });
    expect(at(license({}, { issuedAtMs: T0 + 2 * MIN }), T0).status).toBe('usable');
    const strict = at(license({}, { issuedAtMs: T0 + 2 * MIN }), T0, {
      options: { notBeforeSkewMs: MIN },
    });
    expect(strict.error?.code).toBe('LICENSE_NOT_YET_VALID');
  });

  it('counts from server_time_ms when issued_at_ms is absent', () => {
    const lic = license({ licenseDurationS: 3600 }, { issuedAtMs: 0, serverTimeMs: T0 });
    expect(at(lic, T0).playableUntilMs).toBe(T0 + HOUR);
  });

  it('is status-pending with CLOCK_UNTRUSTED without trusted time', () => {
    const ev = at(license({ licenseDurationS: 60 }), undefined);
    expect(ev.status).toBe('status-pending');
    expect(ev.error).toMatchObject({ code: 'CLOCK_UNTRUSTED', number: 6063 });
    expect(ev.playableUntilMs).toBeUndefined();
  });

  it('marks an expiry decided on an estimated clock as provisional', () => {
    const lic = license({ licenseDurationS: 3600 });
    const expired = at(lic, T0 + 2 * HOUR, { clockEstimated: true });
    expect(expired).toMatchObject({ status: 'expired', provisional: true });
    expect(rules(expired, false)).toEqual(['clock']);
    const fine = at(lic, T0, { clockEstimated: true });
    expect(fine).toMatchObject({ status: 'usable', provisional: false });
    expect(at(lic, T0 + 2 * HOUR).provisional).toBe(false);
  });

  it('reports a malformed policy as internal-error', () => {
    const negative = at(license({ rentalDurationS: -5 }), T0);
    expect(negative.status).toBe('internal-error');
    expect(negative.error?.code).toBe('LICENSE_PROCESSING_FAILED');
    const noIssue = at(license({ licenseDurationS: 60 }, { issuedAtMs: 0, serverTimeMs: 0 }), T0);
    expect(noIssue.status).toBe('internal-error');
    expect(rules(noIssue)).toEqual(['malformed']);
  });

  it('evaluates a license decoded from the wire (int64 fields as numbers)', () => {
    const bytes = v1.License.encode(
      v1.License.create(license({ licenseDurationS: 90 * 86400 })),
    ).finish();
    const decoded = v1.License.decode(bytes);
    expect(at(decoded, T0 + DAY).playableUntilMs).toBe(T0 + 90 * DAY);
  });
});

describe('evaluate: rights, device and application', () => {
  it('refuses a license without can_play', () => {
    const ev = at(license({ canPlay: false }), T0);
    expect(ev.status).toBe('output-restricted');
    expect(ev.error).toMatchObject({ code: 'PLAYBACK_NOT_ALLOWED', number: 6051 });
  });

  it('compares the device security level with the minimum', () => {
    const tee = license({ minSecurityLevel: v1.SecurityLevel.SECURITY_LEVEL_TEE });
    const ev = at(tee, T0);
    expect(ev.status).toBe('output-restricted');
    expect(ev.error).toMatchObject({ code: 'SECURITY_LEVEL_TOO_LOW', number: 6054 });
    expect(ev.error?.message).toContain('tee');
    const hw = { ...DEVICE, securityLevel: v1.SecurityLevel.SECURITY_LEVEL_HARDWARE };
    expect(at(tee, T0, { device: hw }).status).toBe('usable');
    const unspecified = { securityLevel: v1.SecurityLevel.SECURITY_LEVEL_UNSPECIFIED };
    expect(at(license(), T0, { device: unspecified }).status).toBe('usable');
    const sw = license({ minSecurityLevel: v1.SecurityLevel.SECURITY_LEVEL_SOFTWARE });
    expect(at(sw, T0, { device: unspecified }).error?.code).toBe('SECURITY_LEVEL_TOO_LOW');
  });

  it('restricts the keys to the allowed applications', () => {
    const lic = license({ allowedApplicationIds: ['tv.app', 'kids.app'] });
    expect(at(lic, T0).status).toBe('usable');
    const other = at(lic, T0, { device: { ...DEVICE, applicationId: 'rogue.app' } });
    expect(other.status).toBe('output-restricted');
    expect(other.error).toMatchObject({ code: 'APPLICATION_NOT_ALLOWED', number: 6055 });
    const anonymous = at(lic, T0, { device: { securityLevel: DEVICE.securityLevel } });
    expect(anonymous.error?.code).toBe('APPLICATION_NOT_ALLOWED');
    expect(
      at(license({ allowedApplicationIds: [] }), T0, { device: { securityLevel: 1 } }).status,
    ).toBe('usable');
  });

  it('puts revoked first, then released, and lists every blocking rule', () => {
    const lic = license({ canPlay: false, licenseDurationS: 60 });
    const ev = at(lic, T0 + HOUR, { revoked: true, released: true });
    expect(ev.status).toBe('revoked');
    expect(ev.error).toMatchObject({ code: 'LICENSE_REVOKED', number: 6053 });
    expect(rules(ev)).toEqual(['revoked', 'released', 'can-play', 'license-duration']);
    const released = at(license({ canRenew: true, renewalDelayS: 60 }), T0, { released: true });
    expect(released).toMatchObject({ status: 'released', error: { code: 'LICENSE_RELEASED' } });
    expect(released.renewAtMs).toBeUndefined();
  });
});

describe('evaluate: output protection', () => {
  const protectedLic = license({ outputProtection: { uncompressedDigitalVideoOpl: 300 } });

  it('passes through an allowed verdict, blocks a restricted or unknown one', () => {
    expect(at(protectedLic, T0, { output: 'allowed' }).status).toBe('usable');
    const restricted = at(protectedLic, T0, { output: 'restricted' });
    expect(restricted.status).toBe('output-restricted');
    expect(restricted.error?.code).toBe('KEY_NOT_USABLE');
    const unknown = at(protectedLic, T0, { output: 'unknown' });
    expect(unknown.status).toBe('status-pending');
    expect(rules(unknown)).toEqual(['output-protection']);
  });

  it("reports the monitor's own error", () => {
    const error = kwError('PLAYBACK_FAILED', 'HDCP link lost on HDMI-A-1', {
      connector: 'HDMI-A-1',
    });
    const ev = at(protectedLic, T0, { output: () => ({ verdict: 'restricted', error }) });
    expect(ev.error).toMatchObject({
      code: 'PLAYBACK_FAILED',
      message: 'HDCP link lost on HDMI-A-1',
      details: { connector: 'HDMI-A-1' },
    });
  });

  it('asks the callback only when everything else passed', () => {
    const probe = vi.fn(() => 'allowed' as const);
    at(license({ canPlay: false }), T0, { output: probe });
    expect(probe).not.toHaveBeenCalled();
    expect(at(protectedLic, T0, { output: probe }).status).toBe('usable');
    expect(probe).toHaveBeenCalledWith(protectedLic, undefined);
    at(protectedLic, T0, { output: probe, kid: 'ab'.repeat(16) });
    expect(probe).toHaveBeenLastCalledWith(protectedLic, 'ab'.repeat(16));
  });

  it('turns a throwing callback into internal-error', () => {
    const ev = at(protectedLic, T0, {
      output: () => {
        throw new Error('kms gone');
      },
    });
    expect(ev.status).toBe('internal-error');
    expect((ev.error?.cause as Error).message).toBe('kms gone');
  });

  it('notes, without blocking, requirements that no monitor checked', () => {
    const ev = at(protectedLic, T0);
    expect(ev.status).toBe('usable');
    expect(rules(ev, false)).toEqual(['output-protection']);
    expect(at(license(), T0).reasons).toEqual([]);
  });
});
