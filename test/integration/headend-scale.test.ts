import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LicenseExchange } from '../../src/agent/license-exchange.js';
import { runHeadendCluster } from '../../src/headend/index.js';
import { removeDir, startTestHeadend, TestDevice } from './headend-helpers.js';

const KID = Buffer.alloc(16, 0x5a);
const KEY = Buffer.alloc(16, 0x33);
const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

async function provisionAndLicense(url: string, root: Buffer): Promise<string> {
  const d = new TestDevice(url, root);
  await d.provision();
  const got = await new LicenseExchange({
    credentials: d.credentials(),
    trustedRoot: root,
    licenseUrl: `${url}/v1/license`,
  }).acquire({ keyIds: [KID] });
  expect(Buffer.from(got.keys.get(KID.toString('hex'))!).equals(KEY)).toBe(true);
  return d.deviceId;
}

describe('head-end at scale and across restarts', () => {
  it('provisions and licenses fifty devices at once on cluster workers, consistently', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-scale-'));
    dirs.push(dir);
    const seed = await startTestHeadend({}, dir);
    await seed.headend.admin.addContentKey({ kid: KID, key: KEY });
    const root = seed.root;
    await seed.stop();
    const cluster = await runHeadendCluster({ dataDir: dir, workers: 2, server: { port: 0 } });
    try {
      const ids = await Promise.all(
        Array.from({ length: 50 }, () => provisionAndLicense(cluster.url, root)),
      );
      expect(new Set(ids).size).toBe(50);
    } finally {
      await cluster.close();
    }
    const after = await startTestHeadend({}, dir);
    const devices = await after.headend.admin.listDevices();
    expect(devices).toHaveLength(50);
    expect(new Set(devices.map((d) => d.id))).toEqual(new Set(devices.map((d) => d.id)));
    expect(await after.headend.ctx.store.countLicenses()).toBe(50);
    await after.stop();
  });

  it('loses nothing across a restart: root, keys, devices, domains; old certificates still work', async () => {
    const first = await startTestHeadend();
    dirs.push(first.dir);
    await first.headend.admin.addContentKey({ kid: KID, key: KEY });
    await first.headend.admin.createDomain('family', { maxDevices: 3 });
    const d = new TestDevice(first.url, first.root);
    await d.provision();
    const root = first.root;
    await first.stop();
    const second = await startTestHeadend({}, first.dir);
    try {
      expect(second.root.equals(root)).toBe(true);
      // The same device, with its certificate from before the restart.
      const got = await new LicenseExchange({
        credentials: d.credentials(),
        trustedRoot: root,
        licenseUrl: `${second.url}/v1/license`,
      }).acquire({ keyIds: [KID] });
      expect(Buffer.from(got.keys.get(KID.toString('hex'))!).equals(KEY)).toBe(true);
      expect((await second.headend.admin.listDevices()).map((x) => x.id)).toEqual([d.deviceId]);
      expect((await second.headend.admin.listDomains())[0]).toMatchObject({
        accountId: 'family',
        maxDevices: 3,
        revision: 1,
      });
    } finally {
      await second.stop();
    }
  });
});
