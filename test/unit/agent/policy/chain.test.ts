import { describe, expect, it } from 'vitest';
import {
  evaluate,
  type LicenseState,
  type PolicyInput,
} from '../../../../src/agent/policy/index.js';
import { DAY, DEVICE, HOUR, leaf, license, root, T0 } from './license-fixtures.js';

const roots = (...states: LicenseState[]) =>
  new Map(states.map((s) => [s.license.id ?? '', s] as const));
const at = (nowMs: number | undefined, more: Partial<PolicyInput>) =>
  evaluate({ license: leaf(['sub-a', 'sub-b']), nowMs, device: DEVICE, ...more });

describe('root/leaf chains', () => {
  const a = { license: root('sub-a', 10 * 86400) }; // ends T0 + 10 d
  const b = { license: root('sub-b', 20 * 86400) }; // ends T0 + 20 d

  it('plays a leaf until the last of its valid roots ends', () => {
    const ev = at(T0 + DAY, { roots: roots(a, b) });
    expect(ev.status).toBe('usable');
    expect(ev.playableUntilMs).toBe(T0 + 20 * DAY);
    expect(ev.reasons).toEqual([
      expect.objectContaining({
        rule: 'chain',
        blocking: false,
        message: expect.stringContaining('sub-a, sub-b'),
      }),
    ]);
  });

  it('stays usable when one of two roots expired', () => {
    const ev = at(T0 + 15 * DAY, { roots: roots(a, b) });
    expect(ev.status).toBe('usable');
    expect(ev.playableUntilMs).toBe(T0 + 20 * DAY);
  });

  it("is unusable when both roots expired, with the root's reason", () => {
    const ev = at(T0 + 25 * DAY, { roots: roots(a, b) });
    expect(ev.status).toBe('expired');
    expect(ev.error).toMatchObject({
      code: 'LICENSE_EXPIRED',
      details: { rootLicenseId: 'sub-a' },
    });
    expect(ev.error?.message).toContain('root license sub-a');
  });

  it('is ROOT_LICENSE_MISSING when no root is on the device', () => {
    for (const r of [undefined, roots(), roots({ license: root('sub-z', 86400) })]) {
      const ev = at(T0, { roots: r });
      expect(ev.status).toBe('status-pending');
      expect(ev.error).toMatchObject({ code: 'ROOT_LICENSE_MISSING', number: 6056 });
    }
  });

  it('ignores a map entry that is not a root license', () => {
    const impostor = { license: license({}, { id: 'sub-a' }) }; // a simple license named like a root
    expect(at(T0, { roots: roots(impostor) }).error?.code).toBe('ROOT_LICENSE_MISSING');
  });

  it('passes on a revoked root, and bounds the leaf by its own windows too', () => {
    const revoked = at(T0, { roots: roots({ ...a, revoked: true }) });
    expect(revoked).toMatchObject({ status: 'revoked', error: { code: 'LICENSE_REVOKED' } });
    const short = evaluate({
      license: leaf(['sub-a'], { licenseDurationS: 3600 }),
      nowMs: T0,
      device: DEVICE,
      roots: roots(a),
    });
    expect(short.playableUntilMs).toBe(T0 + HOUR);
  });

  it('evaluates roots with the same device and clock', () => {
    const teeRoot = root('sub-a', 86400);
    teeRoot.policy = { ...teeRoot.policy, minSecurityLevel: 2 };
    expect(at(T0, { roots: roots({ license: teeRoot }) }).error?.code).toBe(
      'SECURITY_LEVEL_TOO_LOW',
    );
    const pending = at(undefined, { roots: roots(a) });
    expect(pending.error?.code).toBe('CLOCK_UNTRUSTED');
  });
});
