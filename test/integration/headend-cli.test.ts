import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/media/cli-run.js';
import { removeDir } from './headend-helpers.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-cli-'));
afterAll(() => removeDir(dir));

/** Runs the CLI and captures stdout/stderr. */
async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runCli(args);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

const KID = '00112233445566778899aabbccddeeff';

describe('keywarden headend admin commands', () => {
  it('sets policies with readable durations', async () => {
    const r = await run(
      'headend',
      'policy',
      'set',
      'rental',
      '--data',
      dir,
      '--rental-duration',
      '30d',
      '--playback-duration',
      '24h',
      '--renewal-retry',
      '90m',
      '--can-persist',
      'true',
      '--json',
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      name: 'rental',
      rentalDuration: 30 * 86400,
      playbackDuration: 86400,
      renewalRetryInterval: 5400,
      canPersist: true,
    });
    expect(
      (
        await run(
          'headend',
          'policy',
          'set',
          'bad',
          '--data',
          dir,
          '--rental-duration',
          '3 fortnights',
        )
      ).code,
    ).toBe(1);
  });

  it('adds content keys and assigns policies', async () => {
    const add = await run(
      'headend',
      'content',
      'add',
      '--data',
      dir,
      '--kid',
      KID,
      '--generate',
      '--content-id',
      'movie',
      '--json',
    );
    expect(add.code).toBe(0);
    expect(JSON.parse(add.out)).toMatchObject({
      kid: KID,
      key: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    expect((await run('headend', 'content', 'policy', KID, 'rental', '--data', dir)).code).toBe(0);
    const list = await run('headend', 'content', 'list', '--data', dir, '--json');
    expect(JSON.parse(list.out)).toEqual([
      { kid: KID, contentId: 'movie', policy: 'rental', trackType: 0 },
    ]);
    const dup = await run(
      'headend',
      'content',
      'add',
      '--data',
      dir,
      '--kid',
      KID,
      '--key',
      'ffffffffffffffffffffffffffffffff',
    );
    expect(dup.code).toBe(1);
    expect(dup.err).toContain('7417');
    const missing = await run('headend', 'content', 'policy', KID, 'nope', '--data', dir);
    expect(missing.err).toContain('UNKNOWN_POLICY');
  });

  it('lists devices and domains, human and JSON', async () => {
    expect(
      (await run('headend', 'domain', 'create', 'acme', '--data', dir, '--max-devices', '3')).code,
    ).toBe(0);
    const domains = await run('headend', 'domain', 'list', '--data', dir, '--json');
    expect(JSON.parse(domains.out)[0]).toMatchObject({
      accountId: 'acme',
      maxDevices: 3,
      revision: 1,
      members: [],
    });
    expect((await run('headend', 'domain', 'list', '--data', dir)).out).toContain('acme');
    expect(
      JSON.parse((await run('headend', 'device', 'list', '--data', dir, '--json')).out),
    ).toEqual([]);
    expect((await run('headend', 'device', 'list', '--data', dir)).out).toContain('(no devices)');
    const revoke = await run('headend', 'device', 'revoke', 'nobody', '--data', dir);
    expect(revoke.code).toBe(1);
    expect(revoke.err).toContain('UNKNOWN_DEVICE');
  });

  it('stores server flags in the data dir, checked, and lists where each comes from', async () => {
    const set = await run(
      'headend',
      'flags',
      'set',
      'provision-limit',
      '3',
      '--data',
      dir,
      '--json',
    );
    expect(set.code).toBe(0);
    expect(JSON.parse(set.out)).toMatchObject({
      name: 'provision-limit',
      value: '3',
      source: 'database',
    });
    const list = await run('headend', 'flags', 'list', '--data', dir, '--json');
    expect(JSON.parse(list.out)).toEqual([
      expect.objectContaining({ name: 'min-agent-version', value: '0.1.0', source: 'default' }),
      expect.objectContaining({ name: 'provision-limit', value: '3', source: 'database' }),
    ]);
    expect((await run('headend', 'flags', 'list', '--data', dir)).out).toContain(
      'provision-limit = 3',
    );
    const bad = await run('headend', 'flags', 'set', 'min-agent-version', 'soon', '--data', dir);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('CLI_USAGE');
    expect((await run('headend', 'flags', 'set', 'nope', '1', '--data', dir)).code).toBe(2);
    const unset = await run(
      'headend',
      'flags',
      'unset',
      'provision-limit',
      '--data',
      dir,
      '--json',
    );
    expect(JSON.parse(unset.out)).toMatchObject({ value: '10', source: 'default' });
  });

  it('requires --data for the server', async () => {
    expect((await run('headend')).code).toBe(2);
  });
});
