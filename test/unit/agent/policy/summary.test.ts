import { describe, expect, it } from 'vitest';
import {
  formatPolicySummary,
  licenseRights,
  policySummary,
  requireRight,
} from '../../../../src/agent/policy/index.js';
import { coded, DAY, leaf, license, root, T0, v1 } from './license-fixtures.js';

describe('rights', () => {
  it('reads can_play, can_persist (offline only) and can_renew', () => {
    expect(licenseRights(license({ canPersist: true, canRenew: true }))).toEqual({
      play: true,
      persist: true,
      renew: true,
    });
    const streaming = license({ canPersist: true }, { type: v1.License.LicenseType.STREAMING });
    expect(licenseRights(streaming).persist).toBe(false);
    expect(licenseRights({})).toEqual({ play: false, persist: false, renew: false });
  });

  it('throws the catalogue code for a missing right', () => {
    expect(() => requireRight(license({ canPlay: false }), 'play')).toThrow(
      coded('PLAYBACK_NOT_ALLOWED'),
    );
    expect(() => requireRight(license(), 'persist')).toThrow(coded('CANNOT_PERSIST'));
    expect(() => requireRight(license(), 'renew')).toThrow(coded('CANNOT_RENEW'));
    expect(() =>
      requireRight(license({ canPersist: true, canRenew: true }), 'persist'),
    ).not.toThrow();
    expect(() => requireRight(license({ canRenew: true }), 'renew')).not.toThrow();
  });
});

describe('policySummary', () => {
  it('summarizes a leaf: windows, rights, roots, domain, level, applications', () => {
    const lic = leaf(['sub-a', 'sub-b'], {
      canPersist: true,
      canRenew: true,
      rentalDurationS: 30 * 86400,
      playbackDurationS: 86400,
      renewalDelayS: 3600,
      renewalUrl: 'https://lic.example/renew',
      minSecurityLevel: v1.SecurityLevel.SECURITY_LEVEL_TEE,
      allowedApplicationIds: ['tv.app'],
      domain: { domainId: 'home-7', revision: 3 },
      maxWidth: 1920,
      maxHeight: 1080,
    });
    const s = policySummary(lic, T0 + DAY);
    expect(s).toMatchObject({
      id: 'leaf-1',
      type: 'offline',
      kind: 'leaf',
      contentId: 'movie-1',
      keyIds: ['ab'.repeat(16)],
      rights: { play: true, persist: true, renew: true },
      windows: {
        issuedAtMs: T0,
        rentalEndMs: T0 + 30 * DAY,
        playbackDurationMs: DAY,
        playbackEndMs: T0 + 2 * DAY,
      },
      renewal: {
        delayS: 3600,
        retryIntervalS: 0,
        recoveryDurationS: 0,
        url: 'https://lic.example/renew',
      },
      chainRoots: ['sub-a', 'sub-b'],
      domain: { id: 'home-7', revision: 3 },
      minSecurityLevel: 'tee',
      allowedApplications: ['tv.app'],
      maxResolution: { width: 1920, height: 1080 },
    });
    expect(s.windows.licenseEndMs).toBeUndefined();
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    const text = formatPolicySummary(s);
    expect(text).toContain('license leaf-1 (leaf, offline) content movie-1');
    expect(text).toContain('rights: play yes, persist yes, renew yes');
    expect(text).toContain(`rental ends: ${new Date(T0 + 30 * DAY).toISOString()}`);
    expect(text).toContain('playback window: 24h');
    expect(text).toContain('roots: sub-a, sub-b');
    expect(text).toContain('domain: home-7 (revision 3)');
    expect(text).toContain('applications: tv.app');
  });

  it('summarizes a root and a simple license', () => {
    const r = policySummary(root('sub-a', 30 * 86400));
    expect(r).toMatchObject({ kind: 'root', chainRoots: [], minSecurityLevel: 'any' });
    expect(r.windows.licenseEndMs).toBe(T0 + 30 * DAY);
    const simple = policySummary(license());
    expect(simple.kind).toBe('simple');
    expect(simple.renewal).toBeUndefined();
    expect(simple.domain).toBeUndefined();
    expect(formatPolicySummary(simple)).toContain('license ends: no limit; expires at: no limit');
    expect(formatPolicySummary(simple)).toContain('applications: any');
  });

  it('refuses a malformed policy', () => {
    expect(() => policySummary(license({ licenseDurationS: -1 }))).toThrow(
      coded('LICENSE_PROCESSING_FAILED'),
    );
  });
});
