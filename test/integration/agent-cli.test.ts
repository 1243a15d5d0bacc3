/**
 * `keywarden agent ...` against a real head-end on loopback: the integrator's console on a
 * config file (status, acquire, licenses, play, release, domains), bad config files, and
 * the service's start and SIGTERM stop.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/media/cli-run.js';
import { differencesFromClear, hex, keyOf, kidOf, packageClip } from './agent-helpers.js';
import { removeDir, startTestHeadend, type TestHeadend } from './headend-helpers.js';

let he: TestHeadend;
let dir: string;
let config: string;

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runCli(args);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  he = await startTestHeadend();
  dir = mkdtempSync(path.join(os.tmpdir(), 'kw-agent-cli-'));
  await he.headend.admin.setPolicy('offline', { 'can-persist': 'true', 'license-duration': '7d' });
  await he.headend.admin.addContentKey({
    kid: kidOf(7),
    key: keyOf(7),
    policy: 'offline',
    contentId: 'film-7',
  });
  await he.headend.admin.createDomain('home-7', { maxDevices: 3 });
  await writeFile(path.join(dir, 'root.der'), he.root);
  config = path.join(dir, 'agent.json');
  await writeFile(
    config,
    JSON.stringify({
      stateDir: 'state',
      provisioningUrl: `${he.url}/v1/provision`,
      trustedRoot: 'root.der',
      licenseServerUrl: `${he.url}/v1/license`,
      domainUrl: `${he.url}/v1/domain/join`,
      identitySources: [
        { name: 'machine-id', value: 'cli-test-machine' },
        { name: 'board-serial', value: 'cli-test-board' },
      ],
      friendlyName: 'cli box',
    }),
  );
});

afterAll(async () => {
  await he.stop();
  removeDir(he.dir);
  removeDir(dir);
});

describe('keywarden agent', () => {
  it('acquires (pre-delivery by KID), lists, plays and releases', async () => {
    const before = await run('agent', 'status', '--config', config, '--json');
    expect(before.code).toBe(0);
    expect(JSON.parse(before.out)).toMatchObject({ individualized: false, licensesStored: 0 });

    const got = await run(
      'agent',
      'acquire',
      '--config',
      config,
      '--kid',
      hex(kidOf(7)),
      '--persist',
      '--json',
    );
    expect(got.code).toBe(0);
    const acquired = JSON.parse(got.out) as { license: { id: string; persisted: boolean } };
    expect(acquired.license.persisted).toBe(true);

    const list = await run('agent', 'licenses', '--config', config, '--kid', hex(kidOf(7)));
    expect(list.code).toBe(0);
    expect(list.out).toContain(acquired.license.id);
    expect(list.out).toContain('USABLE');

    const clip = await packageClip(dir, 'film', {
      kid: kidOf(7),
      key: keyOf(7),
      licenseUrl: `${he.url}/v1/license`,
      contentId: 'film-7',
    });
    await writeFile(path.join(dir, 'film.mp4'), clip);
    const out = path.join(dir, 'film-clear.mp4');
    const played = await run(
      'agent',
      'play',
      path.join(dir, 'film.mp4'),
      '-o',
      out,
      '--config',
      config,
    );
    expect(played.code).toBe(0);
    expect(await differencesFromClear(await readFile(out))).toEqual([]);

    const status = JSON.parse((await run('agent', 'status', '--config', config, '--json')).out) as {
      individualized: boolean;
      licensesStored: number;
    };
    expect(status).toMatchObject({ individualized: true, licensesStored: 1 });

    const released = await run('agent', 'release', acquired.license.id, '--config', config);
    expect(released.code).toBe(0);
    expect(released.out).toContain(`released ${acquired.license.id}`);
    expect((await run('agent', 'licenses', '--config', config)).out).toContain('no licenses');
  });

  it('joins and leaves a domain', async () => {
    const joined = await run(
      'agent',
      'domain',
      'join',
      'home-7',
      '--config',
      config,
      '--name',
      'den',
    );
    expect(joined.code, joined.err).toBe(0);
    expect(joined.out).toContain('joined domain');
    const left = await run('agent', 'domain', 'leave', '--config', config);
    expect(left.code, left.err).toBe(0);
    expect(left.out).toContain('left domain');
  });

  it('refuses bad configuration and bad arguments with coded errors', async () => {
    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, '{"stateDir": "x", "provisioningUrl": 5}');
    const r = await run('agent', 'status', '--config', bad);
    expect(r.code).toBe(1);
    expect(r.err).toContain('7520 CONFIG_INVALID');
    const noContent = await run('agent', 'acquire', '--config', config);
    expect(noContent.code).toBe(2);
    const unknown = await run('agent', 'release', 'no-such-license', '--config', config);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('6057 LICENSE_NOT_FOUND');
  });

  it('runs as a service with JSON logs and stops on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.resolve('test/helpers/cli-entry.ts'), 'agent', '--config', config],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 20_000;
    while (!out.includes('agent started') && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain('agent started');
    const line = JSON.parse(out.split('\n').find((l) => l.includes('agent started'))!) as {
      deviceId: string;
    };
    expect(line.deviceId).toMatch(/^[0-9a-f]+$/);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
    expect(out).toContain('agent stopped');
  }, 30_000);
});
