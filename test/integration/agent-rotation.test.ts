/**
 * Key rotation through the agent's session, against a real head-end: a live stream of at
 * least 3 key periods plays without a gap, (a) with keys from leaf licenses embedded in the
 * stream under a broadcast root the device holds (no license request while playing), and
 * (b) with each period's key acquired from the license server as soon as a fragment
 * announces it, before the first sample that needs it.
 */
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import {
  compareSamples,
  digestSamplesOf,
  type SampleDigest,
} from '../../src/media/sample-digest.js';
import { runCli } from '../helpers/media/cli-run.js';
import { splitSegments } from '../helpers/segments.js';
import { Box, FIXTURE, removeBoxes } from './agent-helpers.js';
import { removeDir, startTestHeadend, type TestHeadend } from './headend-helpers.js';

const CHANNEL = 'channel-7';
let he: TestHeadend;
let work: string;
const agents: Agent[] = [];

interface Live {
  init: Buffer;
  fragments: Buffer[];
  periods: { period: number; kid: string }[];
  rotateEvery: number;
}

async function cli(...args: string[]): Promise<string> {
  const r = await runCli(['headend', '--data', he.dir, ...args]);
  if (r.code !== 0) throw new Error(`headend ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function liveStream(name: string, policy: string): Promise<Live> {
  const output = path.join(work, `${name}.mp4`);
  const summary = JSON.parse(
    await cli(
      'live',
      'package',
      '--root',
      CHANNEL,
      '--input',
      FIXTURE,
      '--output',
      output,
      '--periods',
      '3',
      '--fragment-ms',
      '1000',
      '--policy',
      policy,
      '--license-url',
      `${he.url}/v1/license`,
      '--content-id',
      name,
      '--json',
    ),
  ) as { periods: { period: number; kid: string }[]; rotateEvery: number };
  const { init, fragments } = splitSegments(await readFile(output));
  return { periods: summary.periods, rotateEvery: summary.rotateEvery, init, fragments };
}

/** EME keyids init data naming only the first period's key: a player joining live. */
const keyIdsInit = (kid: string): Buffer =>
  Buffer.from(JSON.stringify({ kids: [Buffer.from(kid, 'hex').toString('base64url')] }));

beforeAll(async () => {
  he = await startTestHeadend();
  work = mkdtempSync(path.join(os.tmpdir(), 'kw-agent-live-'));
  await cli(
    'policy',
    'set',
    'channel-root',
    '--chain',
    'root',
    '--broadcast',
    '--license-duration',
    '30d',
  );
  await cli('root', CHANNEL, '--policy', 'channel-root');
  await cli('policy', 'set', 'live-keys', '--license-duration', '1d', '--can-persist', 'false');
}, 60_000);

afterAll(async () => {
  for (const a of agents) await a.close();
  await he.stop();
  removeDir(he.dir);
  removeDir(work);
  removeBoxes();
});

async function playLive(
  agent: Agent,
  live: Live,
  log: string[],
  autoAcquire: boolean,
): Promise<SampleDigest[]> {
  const session = await agent.openSession(keyIdsInit(live.periods[0]!.kid), {
    init: live.init,
    autoAcquire,
  });
  session.on('acquiring-key', (e) => log.push(`acquire ${e.kids.join(',')}`));
  session.on('problem', (e) => log.push(`problem ${e.code} ${e.message}`));
  const clear: SampleDigest[] = [];
  for (const [i, fragment] of live.fragments.entries()) {
    log.push(`decrypt ${i}`);
    const out = await session.decryptFragment(fragment).catch((err: unknown) => {
      throw new Error(`fragment ${i}: ${String(err)}\n${log.join('\n')}`);
    });
    clear.push(...digestSamplesOf(Buffer.concat([await session.clearInit(), out])));
  }
  session.close();
  return clear;
}

describe('live key rotation through the agent', () => {
  it('plays 3+ key periods from embedded leaf licenses, with no license request while playing', async () => {
    const live = await liveStream('embedded', 'live-keys');
    expect(live.periods.length).toBeGreaterThanOrEqual(3);
    const box = new Box();
    const agent = await box.open(he.url, he.root);
    agents.push(agent);
    const root = await agent.licenses.acquire({
      contentId: CHANNEL,
      serverUrl: `${he.url}/v1/license`,
    });
    expect(root.license.chain.role).toBe('root');
    const posts = box.cable.posts;
    const log: string[] = [];
    const clear = await playLive(agent, live, log, false);
    expect(box.cable.posts).toBe(posts);
    expect(log.filter((l) => l.startsWith('acquire'))).toEqual([]);
    expect(compareSamples(clear, digestSamplesOf(await readFile(FIXTURE)))).toEqual([]);
  });

  it('acquires each next period key when a fragment announces it, before the first sample needs it', async () => {
    const live = await liveStream('online', 'live-keys');
    const box = new Box();
    const agent = await box.open(he.url, he.root);
    agents.push(agent);
    const log: string[] = [];
    // No root license: embedded licenses cannot open, keys come from the license server.
    const clear = await playLive(agent, live, log, true);
    expect(compareSamples(clear, digestSamplesOf(await readFile(FIXTURE)))).toEqual([]);
    for (const [p, period] of live.periods.entries()) {
      if (p === 0) continue;
      const firstFragment = p * live.rotateEvery;
      const acquired = log.findIndex((l) => l.startsWith('acquire') && l.includes(period.kid));
      const needed = log.indexOf(`decrypt ${firstFragment}`);
      expect(acquired, `period ${p} key`).toBeGreaterThanOrEqual(0);
      expect(acquired, `period ${p} key acquired before fragment ${firstFragment}`).toBeLessThan(
        needed,
      );
    }
    const held = await agent.licenses.select();
    expect(new Set(held.flatMap((l) => l.kids))).toEqual(new Set(live.periods.map((p) => p.kid)));
  });
});
