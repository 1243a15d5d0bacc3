import { chmodSync, mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isKeywardenError } from '../../../src/errors/index.js';
import { loadMasterKey, MASTER_KEY_FILE } from '../../../src/headend/master-key.js';
import { formatDuration, parseDuration } from '../../../src/headend/policy/durations.js';
import { applyPolicyChanges, parseStoredPolicy } from '../../../src/headend/policy/policy-args.js';
import { DEFAULT_POLICY } from '../../../src/headend/policy/policy-spec.js';
import { policyToProto } from '../../../src/headend/policy/policy-proto.js';
import { KeySealer } from '../../../src/headend/sealing.js';
import { accountHint, expiryOf } from '../../../src/headend/services/license-builder.js';
import { FLAG_FIELDS } from '../../../src/cli/commands/headend.js';
import {
  applyFlags,
  canonicalFlag,
  FLAG_NAMES,
  flagsOfSettings,
  withoutFlags,
} from '../../../src/headend/flags.js';
import { compareVersions, DEFAULT_SETTINGS, isSemver } from '../../../src/headend/settings.js';
import { openSqliteStore } from '../../../src/headend/store/open-store.js';
import { MIGRATIONS } from '../../../src/headend/store/migrations.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return isKeywardenError(err) ? err.code : 'not coded';
  }
  return undefined;
};

describe('durations', () => {
  it.each([
    ['30d', 2592000],
    ['24h', 86400],
    ['90m', 5400],
    ['45s', 45],
    ['1h30m', 5400],
    ['1w', 604800],
    ['120', 120],
    ['unlimited', 0],
  ])('parses %s', (text, seconds) => expect(parseDuration(text)).toBe(seconds));

  it.each(['', '3x', '1h 2q', '-5m', 'd', '1.5h'])('refuses %j with a code', (text) => {
    expect(code(() => parseDuration(text))).toBe('HEADEND_BAD_POLICY');
  });

  it('formats what it parses', () => {
    for (const s of [0, 45, 5400, 90061]) expect(parseDuration(formatDuration(s))).toBe(s);
  });
});

describe('policy options', () => {
  it('applies every kind of field', () => {
    const p = applyPolicyChanges(DEFAULT_POLICY, {
      'can-persist': 'yes',
      'rental-duration': '48h',
      'max-resolution': '1920x1080',
      'min-security-level': 'tee',
      'allowed-apps': 'com.a, com.b',
      'opl-uncompressed-video': '300',
      hdcp: '2.2',
      'hdcp-type1': 'true',
      cgmsa: 'copy-never',
      chain: 'leaf',
      roots: 'basic,premium',
    });
    expect(p).toMatchObject({
      canPersist: true,
      rentalDuration: 172800,
      maxWidth: 1920,
      maxHeight: 1080,
      minSecurityLevel: 2,
      allowedApplications: ['com.a', 'com.b'],
      roots: ['basic', 'premium'],
    });
    const wire = policyToProto(p, { chain: { isRoot: false, roots: p.roots } });
    expect(wire.outputProtection).toMatchObject({
      uncompressedDigitalVideoOpl: 300,
      hdcpVersion: '2.2',
      hdcpType1: true,
      cgmsA: 3,
    });
    expect(wire.chain?.rootLicenseIds).toEqual(['basic', 'premium']);
  });

  it.each([
    [{ chain: 'leaf' }],
    [{ roots: 'a' }],
    [{ 'can-play': 'maybe' }],
    [{ 'opl-analog-video': '-1' }],
    [{ hdcp: '1.4', 'hdcp-type1': 'true' }],
    [{ nonsense: '1' }],
  ])('refuses %j', (changes) => {
    expect(code(() => applyPolicyChanges(DEFAULT_POLICY, changes))).toBe('HEADEND_BAD_POLICY');
  });

  it('fills fields a stored policy predates', () => {
    expect(parseStoredPolicy('{"canPersist":true}')).toMatchObject({
      canPersist: true,
      canPlay: true,
      opl: DEFAULT_POLICY.opl,
    });
  });

  it('expires at the earlier of license and rental windows', () => {
    expect(expiryOf({ ...DEFAULT_POLICY, licenseDuration: 100, rentalDuration: 50 }, 1000)).toBe(
      51_000,
    );
    expect(expiryOf({ ...DEFAULT_POLICY, licenseDuration: 0, rentalDuration: 0 }, 1000)).toBe(0);
  });

  it('reads the account hint in both forms only', () => {
    expect(accountHint('{"account":"a1"}')).toBe('a1');
    expect(accountHint('account=b2')).toBe('b2');
    expect(accountHint('{not json')).toBe('');
    expect(accountHint('{"account":5}')).toBe('');
  });
});

describe('versions', () => {
  it('orders semver', () => {
    expect(compareVersions('1.2.0', '1.10.0')).toBe(-1);
    expect(compareVersions('1.0.0-rc1', '1.0.0')).toBe(-1);
    expect(compareVersions('2.0.0', '2.0.0')).toBe(0);
    expect(isSemver('1.2')).toBe(false);
    expect(isSemver('v1.2.3')).toBe(true);
  });
});

describe('secrets at rest', () => {
  it('seals per purpose and record, and refuses moved or foreign blobs', () => {
    const s = new KeySealer(Buffer.alloc(32, 1));
    const blob = s.seal('content-key', 'kid1', Buffer.from('secret'));
    expect(s.open('content-key', 'kid1', blob).toString()).toBe('secret');
    expect(code(() => s.open('content-key', 'kid2', blob))).toBe('MASTER_KEY_WRONG');
    expect(code(() => s.open('pki', 'kid1', blob))).toBe('MASTER_KEY_WRONG');
    expect(code(() => new KeySealer(Buffer.alloc(32, 2)).open('content-key', 'kid1', blob))).toBe(
      'MASTER_KEY_WRONG',
    );
    expect(code(() => s.open('content-key', 'kid1', blob.subarray(0, 10)))).toBe('STORE_FAILED');
  });

  it('generates a 0600 master key file once, prefers the environment, refuses loose modes', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-mk-'));
    const first = await loadMasterKey(dir, {});
    expect(first.source).toBe('generated');
    expect(statSync(path.join(dir, MASTER_KEY_FILE)).mode & 0o777).toBe(0o600);
    const again = await loadMasterKey(dir, {});
    expect(again.key.equals(first.key)).toBe(true);
    const env = await loadMasterKey(dir, { KEYWARDEN_MASTER_KEY: 'ab'.repeat(32) });
    expect(env).toMatchObject({ source: 'env' });
    await expect(loadMasterKey(dir, { KEYWARDEN_MASTER_KEY: 'short' })).rejects.toMatchObject({
      code: 'MASTER_KEY_MISSING',
    });
    chmodSync(path.join(dir, MASTER_KEY_FILE), 0o644);
    await expect(loadMasterKey(dir, {})).rejects.toMatchObject({ code: 'MASTER_KEY_MISSING' });
  });
});

describe('server flags', () => {
  it('lists the same flags in the CLI and the head-end', () => {
    expect([...FLAG_FIELDS]).toEqual(FLAG_NAMES);
  });

  it('checks values, and maps settings to flags and back', () => {
    expect(canonicalFlag('min-agent-version', 'v1.2.3')).toBe('1.2.3');
    expect(canonicalFlag('provision-limit', ' 7 ')).toBe('7');
    expect(code(() => canonicalFlag('provision-limit', '0'))).toBe('CLI_USAGE');
    expect(code(() => canonicalFlag('min-agent-version', '1.2'))).toBe('CLI_USAGE');
    expect(code(() => canonicalFlag('nope', '1'))).toBe('CLI_USAGE');
    expect(flagsOfSettings({ provisioningLimit: 3, maxSkewMs: 5 })).toEqual([
      ['provision-limit', '3'],
    ]);
    expect(withoutFlags({ provisioningLimit: 3, minAgentVersion: '1.0.0', maxSkewMs: 5 })).toEqual({
      maxSkewMs: 5,
    });
    const s = applyFlags(DEFAULT_SETTINGS, {
      'provision-limit': '4',
      'min-agent-version': 'garbage',
      unknown: 'x',
    });
    expect(s.provisioningLimit).toBe(4);
    expect(s.minAgentVersion).toBe(DEFAULT_SETTINGS.minAgentVersion);
  });
});

describe('store', () => {
  it('migrates once, runs WAL, keeps nonces unique across connections, fails coded', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-store-'));
    const a = await openSqliteStore(dir);
    const b = await openSqliteStore(dir);
    expect(await a.schemaVersion()).toBe(MIGRATIONS.length);
    expect(await a.rememberNonce('n1', 10, 0)).toBe(true);
    expect(await b.rememberNonce('n1', 10, 0)).toBe(false);
    await a.close();
    await a.close();
    await expect(a.getPolicy('p')).rejects.toMatchObject({ code: 'STORE_FAILED' });
    await b.close();
  });
});
