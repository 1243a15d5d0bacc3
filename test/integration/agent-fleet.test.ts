/**
 * Fleet revocation end to end: the real head-end with its embedded broker, an agent with
 * the fleet channel, `keywarden fleet revoke` on the operator's side. A revoked key turns
 * 'revoked' in the agent's open session within a second, and a device that was offline
 * applies the revocation when it comes back (retained list and HTTP pull). Faults: the
 * head-end (and its embedded broker) restarts; an external broker is down while the
 * head-end's HTTP pull still works. (Broker restarts and offline devices at the client
 * level, over aedes, Mosquitto and NATS: fleet-client.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import type { RevocationListEvent } from '../../src/fleet/index.js';
import type { RunningFleet } from '../../src/headend/index.js';
import { isKeywardenError } from '../../src/errors/index.js';
import { decodeMessage } from '../../src/protocol/codec.js';
import { MessageType, verifyMessage } from '../../src/protocol/envelope.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import { freePort, startAedes, type TestBroker } from '../helpers/fleet-brokers.js';
import { runCli } from '../helpers/media/cli-run.js';
import { Box, hex, keyOf, kidOf, packageClip, removeBoxes, waitFor } from './agent-helpers.js';
import { removeDir, startTestHeadend, type TestHeadend } from './headend-helpers.js';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'kwagent';
let he: TestHeadend;
let fleet: RunningFleet;
let work: string;
const agents: Agent[] = [];

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
  await addFilms(he, [11, 12]);
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

/** `p`, or an error naming `what` after `ms`. */
function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]);
}

/** `fleet revoke --kid` on the head-end's data dir; the number of the list it issued. */
async function revokeKid(dir: string, n: number): Promise<number> {
  const run = await runCli(['fleet', '--data', dir, 'revoke', '--kid', hex(kidOf(n)), '--json']);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { listNumber: number }).listNumber;
}

/** The number of the list the head-end serves over HTTP. */
async function servedListNumber(headend: TestHeadend): Promise<number> {
  const res = await fetch(`${headend.url}/v1/fleet/revocations`);
  expect(res.status).toBe(200);
  const verified = verifyMessage(
    new Uint8Array(await res.arrayBuffer()),
    MessageType.FLEET_REVOCATION_LIST,
    { trustedRoot: headend.root },
  );
  return Number(
    decodeMessage(keywarden.v1.RevocationList, verified.payload, 'RevocationList').number,
  );
}

async function statusOf(agent: Agent, n: number): Promise<string[]> {
  return (await agent.licenses.select({ contentId: `film-${n}` })).map((l) => l.status);
}

async function addFilms(headend: TestHeadend, films: number[]): Promise<void> {
  await headend.headend.admin.setPolicy('vod', { 'can-persist': 'true', 'license-duration': '7d' });
  for (const n of films)
    await headend.headend.admin.addContentKey({
      kid: kidOf(n),
      key: keyOf(n),
      policy: 'vod',
      contentId: `film-${n}`,
    });
}

describe('fleet faults through the agent', () => {
  const FAST = { initialDelayMs: 100, maxDelayMs: 400 };

  it('the head-end restarts: its list number carries on, newer lists apply, nothing is lost', async () => {
    const prefix = 'kwrestart';
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-headend-restart-'));
    const httpPort = await freePort();
    const mqttPort = await freePort();
    let head = await startTestHeadend({}, dir, undefined, httpPort);
    let run = await head.headend.startFleet({ mqttPort, prefix, pollMs: 100 });
    let agent: Agent | undefined;
    try {
      await addFilms(head, [31, 32]);
      agent = await new Box().open(head.url, head.root, {
        fleet: {
          url: run.mqttUrl,
          topicPrefix: prefix,
          protocolVersion: 4,
          pullUrl: `${head.url}/v1/fleet/revocations`,
          reconnect: FAST,
        },
      });
      for (const n of [31, 32])
        await agent.licenses.acquire({
          contentId: `film-${n}`,
          serverUrl: `${head.url}/v1/license`,
          persist: true,
        });
      const fleet = (): NonNullable<Agent['fleet']> => agent!.fleet!;
      await waitFor(() => agent?.fleet?.client.connected === true);
      const first = await revokeKid(dir, 31);
      await waitFor(() => fleet().client.appliedListNumber === first);
      expect(await statusOf(agent, 31)).toEqual(['revoked']);
      expect(await statusOf(agent, 32)).toEqual(['usable']);

      const before = fleet().client.counters();

      // The head-end process goes away (its embedded broker with it) and comes back.
      await run.close();
      await head.stop();
      await waitFor(() => !fleet().client.connected);
      head = await startTestHeadend({}, dir, undefined, httpPort);
      run = await head.headend.startFleet({ mqttPort, prefix, pollMs: 100 });
      // The publisher keeps numbering from the store: the same list, not a list 1.
      expect(await servedListNumber(head)).toBe(first);
      await waitFor(() => fleet().client.connected, 10_000);
      const second = await revokeKid(dir, 32);
      expect(second).toBe(first + 1);
      await waitFor(() => fleet().client.appliedListNumber === second, 10_000);
      expect(await statusOf(agent, 31)).toEqual(['revoked']);
      expect(await statusOf(agent, 32)).toEqual(['revoked']);
      expect(agent.store.list()).toEqual([]);
      // After the restart: list `first` again (a duplicate, not applied twice), then `second`.
      const counters = fleet().client.counters();
      expect(counters.listsAccepted).toBe(before.listsAccepted + 1);
      expect(counters.listsDuplicate).toBeGreaterThan(before.listsDuplicate);
      expect(counters.rejectedByCode.FLEET_LIST_OUTDATED ?? 0).toBe(0);
      expect(counters.rejectedByCode.SIGNATURE_INVALID ?? 0).toBe(0);
    } finally {
      await agent?.close();
      await run.close();
      await head.stop();
      removeDir(dir);
    }
  });

  it('the broker is down: the revocation arrives over the HTTP pull, then MQTT resumes', async () => {
    const prefix = 'kwnobroker';
    const broker: TestBroker = await startAedes();
    const head = await startTestHeadend();
    const run = await head.headend.startFleet({ mqttUrl: broker.url, prefix, pollMs: 100 });
    let agent: Agent | undefined;
    try {
      await addFilms(head, [41, 42]);
      agent = await new Box().open(head.url, head.root, {
        fleet: {
          url: broker.url,
          topicPrefix: prefix,
          protocolVersion: 4,
          pullUrl: `${head.url}/v1/fleet/revocations`,
          reconnect: FAST,
        },
      });
      for (const n of [41, 42])
        await agent.licenses.acquire({
          contentId: `film-${n}`,
          serverUrl: `${head.url}/v1/license`,
          persist: true,
        });
      const client = agent.fleet!.client;
      await waitFor(() => client.connected);
      await waitFor(() => client.appliedListNumber > 0); // the initial (empty) list

      await broker.stop();
      await waitFor(() => !client.connected);
      const viaHttp = new Promise<RevocationListEvent>((resolve) =>
        client.on('revocation-list', (e: RevocationListEvent) => resolve(e)),
      );
      const number = await revokeKid(head.dir, 41);
      const got = await within(viaHttp, 'the list over HTTP while the broker is down');
      expect(got).toMatchObject({ number, source: 'http' });
      await waitFor(() => client.appliedListNumber === number);
      expect(client.connected).toBe(false);
      expect(await statusOf(agent, 41)).toEqual(['revoked']);
      expect(await statusOf(agent, 42)).toEqual(['usable']);

      // The broker is back: the device reconnects, and the next list comes over MQTT again.
      await broker.start();
      await waitFor(() => client.connected, 10_000);
      const overMqtt = new Promise<RevocationListEvent>((resolve) =>
        client.on('revocation-list', (e: RevocationListEvent) => {
          if (e.source === 'mqtt') resolve(e);
        }),
      );
      const next = await revokeKid(head.dir, 42);
      expect(await within(overMqtt, 'the next list over MQTT')).toMatchObject({
        number: next,
        source: 'mqtt',
      });
      await waitFor(() => client.appliedListNumber === next);
      expect(await statusOf(agent, 42)).toEqual(['revoked']);
    } finally {
      await agent?.close();
      await run.close();
      await head.stop();
      await broker.stop();
      removeDir(head.dir);
    }
  });
});
