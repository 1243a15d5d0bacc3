/**
 * Fleet revocation end to end: the real head-end with its embedded broker, an agent with
 * the fleet channel, `keywarden fleet revoke` on the operator's side. A revoked key turns
 * 'revoked' in the agent's open session within a second, and a device that was offline
 * applies the revocation when it comes back (retained list and HTTP pull).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import type { RunningFleet } from '../../src/headend/index.js';
import { isKeywardenError } from '../../src/errors/index.js';
import { runCli } from '../helpers/media/cli-run.js';
import { Box, hex, keyOf, kidOf, packageClip, removeBoxes } from './agent-helpers.js';
import { removeDir, startTestHeadend, type TestHeadend } from './headend-helpers.js';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'kwagent';
let he: TestHeadend;
let fleet: RunningFleet;
let work: string;
const agents: Agent[] = [];

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

async function fleetAgent(box: Box): Promise<Agent> {
  const agent = await box.open(he.url, he.root, {
    fleet: {
      url: fleet.mqttUrl,
      topicPrefix: PREFIX,
      protocolVersion: 4, // the embedded broker speaks MQTT 3.1.1
      pullUrl: `${he.url}/v1/fleet/revocations`,
    },
  });
  agents.push(agent);
  return agent;
}

beforeAll(async () => {
  he = await startTestHeadend();
  fleet = await he.headend.startFleet({ mqttPort: 0, prefix: PREFIX, pollMs: 100 });
  work = mkdtempSync(path.join(os.tmpdir(), 'kw-agent-fleet-'));
  await he.headend.admin.setPolicy('vod', { 'can-persist': 'true', 'license-duration': '7d' });
  for (const n of [11, 12])
    await he.headend.admin.addContentKey({
      kid: kidOf(n),
      key: keyOf(n),
      policy: 'vod',
      contentId: `film-${n}`,
    });
});

afterAll(async () => {
  for (const a of agents) await a.close();
  await fleet?.close();
  await he.stop();
  removeDir(he.dir);
  removeDir(work);
  removeBoxes();
});

describe('fleet revocation through the agent', () => {
  it('stops an open session within a second of `fleet revoke --kid`', async () => {
    const agent = await fleetAgent(new Box());
    const clip = await packageClip(work, 'film-11', {
      kid: kidOf(11),
      key: keyOf(11),
      licenseUrl: `${he.url}/v1/license`,
      contentId: 'film-11',
    });
    const session = await agent.openSession(clip); // individualizes; the fleet link starts
    await session.decryptFragment(clip);
    await waitFor(() => agent.fleet?.client.connected === true);
    const run = await runCli(['fleet', '--data', he.dir, 'revoke', '--kid', hex(kidOf(11))]);
    expect(run.code, run.stderr).toBe(0);
    const took = await waitFor(() => session.keyStatuses().get(hex(kidOf(11))) === 'revoked');
    expect(took).toBeLessThan(1000 + 500); // the publisher polls every 100 ms here
    const err = await session.decryptFragment(clip).catch((e: unknown) => e);
    expect(isKeywardenError(err, 'LICENSE_REVOKED')).toBe(true);
    expect(agent.store.list()).toEqual([]);
  });

  it('applies a revocation made while the device was offline when it comes back', async () => {
    const box = new Box();
    const agent = await fleetAgent(box);
    await agent.licenses.acquire({
      contentId: 'film-12',
      serverUrl: `${he.url}/v1/license`,
      persist: true,
    });
    await waitFor(() => agent.fleet?.client.connected === true);
    await agent.close();
    const run = await runCli(['fleet', '--data', he.dir, 'revoke', '--kid', hex(kidOf(12))]);
    expect(run.code, run.stderr).toBe(0);
    const again = await fleetAgent(box);
    await waitFor(() => again.store.list().length === 0);
    const [held] = await again.licenses.select(kidOf(12));
    expect(held?.status ?? 'revoked').toBe('revoked');
  });
});
