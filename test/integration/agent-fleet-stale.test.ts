/**
 * The stale-list policy (docs/fleet.md "Offline and stale"): past the applied revocation
 * list's next update, the agent refuses NEW licenses until a fresh list arrives (7605), unless
 * its config says `whenStale: "allow"`. Real head-end, its embedded broker, real agents; the
 * device's clock is moved forward while the head-end's stands still, so the list the device
 * holds goes stale without the head-end issuing a newer one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import { isKeywardenError } from '../../src/errors/index.js';
import type { RunningFleet } from '../../src/headend/index.js';
import { Box, FakeTime, keyOf, kidOf, removeBoxes, waitFor } from './agent-helpers.js';
import { removeDir, startTestHeadend, type TestHeadend } from './headend-helpers.js';

const PREFIX = 'kwstale';
const HOUR = 3600_000;
let he: TestHeadend;
let fleet: RunningFleet;
let headendOffsetMs = 0;
const agents: Agent[] = [];

async function fleetAgent(time: FakeTime, whenStale?: 'refuse' | 'allow'): Promise<Agent> {
  const box = new Box(undefined, time.device());
  const agent = await box.open(he.url, he.root, {
    fleet: {
      url: fleet.mqttUrl,
      topicPrefix: PREFIX,
      protocolVersion: 4,
      pullUrl: `${he.url}/v1/fleet/revocations`,
      ...(whenStale && { whenStale }),
    },
  });
  agents.push(agent);
  return agent;
}

const acquire = (agent: Agent, n: number): Promise<unknown> =>
  agent.licenses.acquire({ contentId: `film-${n}`, serverUrl: `${he.url}/v1/license` });

beforeAll(async () => {
  he = await startTestHeadend({}, undefined, () => Date.now() + headendOffsetMs);
  fleet = await he.headend.startFleet({
    mqttPort: 0,
    prefix: PREFIX,
    pollMs: 100,
    listIntervalMs: HOUR,
  });
  await he.headend.admin.setPolicy('vod', { 'license-duration': '7d' });
  for (const n of [21, 22, 23])
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
  removeBoxes();
});

describe('a stale revocation list', () => {
  it('refuses new licenses past next update, and takes them again once a fresh list arrives', async () => {
    const time = new FakeTime();
    const agent = await fleetAgent(time);
    await acquire(agent, 21); // the list is fresh: the license comes
    const held = agent.fleet!.client.appliedListNumber;
    expect(held).toBeGreaterThan(0);

    time.advance(2 * HOUR); // the device's list is now an hour past its next update
    expect(agent.fleet!.client.isStale(time.trueMs)).toBe(true);
    const err = await acquire(agent, 22).catch((e: unknown) => e);
    expect(isKeywardenError(err, 'FLEET_LIST_STALE'), String(err)).toBe(true);
    expect((err as { details: { listNumber: number } }).details.listNumber).toBe(held);

    // The head-end's time catches up: its publisher issues the next list, MQTT delivers it.
    headendOffsetMs = 2 * HOUR;
    await waitFor(() => agent.fleet!.client.appliedListNumber > held);
    await expect(acquire(agent, 22)).resolves.toBeDefined();
  });

  it('only reports it when the config says whenStale: "allow"', async () => {
    const time = new FakeTime();
    time.trueMs = Date.now() + headendOffsetMs;
    const agent = await fleetAgent(time, 'allow');
    await acquire(agent, 21);
    // The publisher stops (the operator's fleet side is down): no newer list will come.
    await fleet.close();
    headendOffsetMs += 3 * HOUR;
    time.advance(3 * HOUR);
    expect(agent.fleet!.client.isStale(time.trueMs)).toBe(true);
    await expect(acquire(agent, 23)).resolves.toBeDefined();
  });
});
