/**
 * The agent's license lifecycle end to end against the real head-end over HTTP on loopback:
 * individualization, streaming/persistent/rental licenses, subscriptions, domains, secure
 * release, offline playback, and decryption checked sample by sample against the clear clip.
 * Head-end and devices share a fake clock so that windows can run out inside the test.
 */
import { mkdtempSync } from 'node:fs';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import type { AgentEvents } from '../../src/agent/events.js';
import { isKeywardenError, type KeywardenError } from '../../src/errors/index.js';
import {
  Box,
  DAY,
  FakeTime,
  HOUR,
  differencesFromClear,
  hex,
  keyOf,
  kidOf,
  packageClip,
  removeBoxes,
} from './agent-helpers.js';
import { freePort, removeDir, startTestHeadend, type TestHeadend } from './headend-helpers.js';

const time = new FakeTime();
let he: TestHeadend;
let work: string;
const open: Agent[] = [];

async function agentOn(box: Box, extra: Parameters<Box['open']>[2] = {}): Promise<Agent> {
  const a = await box.open(he.url, he.root, extra);
  open.push(a);
  return a;
}

function events(agent: Agent): string[] {
  const seen: string[] = [];
  for (const e of [
    'individualizing',
    'individualized',
    'acquiring-license',
    'license-acquired',
    'joining-domain',
    'domain-joined',
    'renewing',
    'renewed',
    'renewal-failed',
    'expired',
    'release-pending',
    'released',
    'release-failed',
    'clock-rollback',
    'store-problem',
  ] as (keyof AgentEvents)[])
    agent.on(e, () => seen.push(e));
  return seen;
}

async function refusal(p: Promise<unknown>): Promise<KeywardenError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isKeywardenError(err)) throw new Error(`expected a coded error, got ${String(err)}`);
  return err;
}

const licenseUrl = (): string => `${he.url}/v1/license`;

beforeAll(async () => {
  // The domain-required answer names the domain controller: it must be this head-end.
  const port = await freePort();
  he = await startTestHeadend(
    { domainServerUrl: `http://127.0.0.1:${port}/v1/domain/join` },
    undefined,
    time.server,
    port,
  );
  work = mkdtempSync(path.join(os.tmpdir(), 'kw-agent-e2e-'));
  const a = he.headend.admin;
  await a.setPolicy('streaming', { 'license-duration': '24h', 'can-persist': 'false' });
  await a.setPolicy('persistent', {
    'license-custom-data': 'https://cdn.example/{contentId}.mp4',
    'license-duration': '30d',
    'can-persist': 'true',
    'can-renew': 'true',
    'renewal-delay': '7d',
  });
  await a.setPolicy('rental', {
    'license-duration': '0',
    'rental-duration': '30d',
    'playback-duration': '24h',
    'can-persist': 'true',
    'can-renew': 'false',
  });
  await a.setPolicy('sub-root', {
    'license-duration': '30d',
    'can-renew': 'true',
    'can-persist': 'true',
  });
  await a.setPolicy('leaf', {
    chain: 'leaf',
    roots: 'sub-basic,sub-premium',
    'license-duration': '0',
    'can-persist': 'true',
  });
  await a.setPolicy('household', { 'domain-bound': 'true', 'can-persist': 'true' });
  await a.setPolicy('renewable', {
    'license-duration': '1h',
    'can-renew': 'true',
    'renewal-delay': '30m',
    'renewal-retry': '5m',
    'renewal-recovery': '2h',
  });
  await a.addRoot('sub-basic', 'sub-root');
  await a.addRoot('sub-premium', 'sub-root');
  for (const [n, policy] of [
    [1, 'streaming'],
    [2, 'persistent'],
    [3, 'rental'],
    [4, 'leaf'],
    [5, 'household'],
    [6, 'renewable'],
  ] as const)
    await a.addContentKey({ kid: kidOf(n), key: keyOf(n), policy, contentId: `title-${n}` });
  await a.createDomain('family-1', { maxDevices: 2 });
  await a.createDomain('family-2', { maxDevices: 3 });
});

afterAll(async () => {
  for (const a of open) await a.close().catch(() => undefined);
  await he.stop();
  removeDir(he.dir);
  removeDir(work);
  removeBoxes();
});

describe('agent against the real head-end', () => {
  it('individualizes on first need and plays a streaming license, memory only', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    const seen = events(agent);
    expect(agent.status().individualized).toBe(false);
    const clip = await packageClip(work, 'streaming', {
      kid: kidOf(1),
      key: keyOf(1),
      licenseUrl: licenseUrl(),
      contentId: 'title-1',
    });
    const session = await agent.openSession(clip);
    expect(session.keyStatuses().get(hex(kidOf(1)))).toBe('usable');
    expect(await differencesFromClear(await session.decryptFragment(clip))).toEqual([]);
    expect(seen.slice(0, 4)).toEqual([
      'individualizing',
      'individualized',
      'acquiring-license',
      'license-acquired',
    ]);
    const [info] = await agent.licenses.select(kidOf(1));
    expect(info).toMatchObject({ type: 'streaming', persisted: false, usable: true, playCount: 1 });
    await agent.close();
    // Streaming licenses are never written: a restarted agent holds nothing.
    const again = await agentOn(box);
    expect(await again.licenses.select(kidOf(1))).toEqual([]);
  });

  it('shares one round trip between concurrent acquisitions of the same keys', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    await agent.individualize();
    const before = box.cable.posts;
    const [a, b, c] = await Promise.all([
      agent.licenses.acquire({ keyIds: [kidOf(1)], serverUrl: licenseUrl() }),
      agent.licenses.acquire({ keyIds: [hex(kidOf(1))], serverUrl: licenseUrl() }),
      agent.licenses.acquire({ keyIds: [kidOf(1)], serverUrl: licenseUrl() }),
    ]);
    expect(box.cable.posts - before).toBe(1);
    expect(a.license.id).toBe(b.license.id);
    expect(b.license.id).toBe(c.license.id);
  });

  it('stores a persistent license that plays offline after a restart', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    const got = await agent.licenses.acquire({
      contentId: 'title-2',
      serverUrl: licenseUrl(),
      persist: true,
    });
    expect(got.license).toMatchObject({ type: 'offline', persisted: true, usable: true });
    // Pre-delivery: the service's custom data carries the content URL.
    expect(got.customData).toBe('https://cdn.example/title-2.mp4');
    await agent.close();
    box.cable.connected = false; // the network is down from here on
    const offline = await agentOn(box);
    const clip = await packageClip(work, 'persistent', {
      kid: kidOf(2),
      key: keyOf(2),
      licenseUrl: licenseUrl(),
      contentId: 'title-2',
    });
    const session = await offline.openSession(clip);
    expect(await differencesFromClear(await session.decryptFragment(clip))).toEqual([]);
    const [info] = await offline.licenses.select({ contentId: 'title-2' });
    expect(info).toMatchObject({ id: got.license.id, usable: true, playCount: 1 });
    expect(info!.policy).toBeDefined();
    box.cable.connected = true;
  });

  it('ends a rental 24 h after first play although the 30-day window is open', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    const clip = await packageClip(work, 'rental', {
      kid: kidOf(3),
      key: keyOf(3),
      licenseUrl: licenseUrl(),
      contentId: 'title-3',
    });
    const session = await agent.openSession(clip, {});
    await session.decryptFragment(clip); // first play
    const [first] = await agent.licenses.select(kidOf(3));
    expect(first!.firstPlayMs).toBeDefined();
    expect(first!.playableUntilMs).toBe(first!.firstPlayMs! + DAY);
    time.advance(23 * HOUR);
    expect(await differencesFromClear(await session.decryptFragment(clip))).toEqual([]);
    time.advance(2 * HOUR);
    const err = await refusal(session.decryptFragment(clip));
    expect(err.code).toBe('LICENSE_EXPIRED');
    expect(session.keyStatuses().get(hex(kidOf(3)))).toBe('expired');
  });

  it('keeps trusted time when the wall clock is set back 30 days: the rental stays over', async () => {
    const device = time.device();
    const box = new Box(undefined, device);
    const agent = await agentOn(box);
    const seen = events(agent);
    await agent.licenses.acquire({ keyIds: [kidOf(3)], serverUrl: licenseUrl(), persist: true });
    const clip = await packageClip(work, 'rental2', {
      kid: kidOf(3),
      key: keyOf(3),
      licenseUrl: licenseUrl(),
      contentId: 'title-3',
    });
    const session = await agent.openSession(clip);
    await session.decryptFragment(clip);
    time.advance(25 * HOUR);
    device.state.wallOffsetMs = -30 * DAY;
    await agent.close();
    const again = await agentOn(box);
    const againSeen = events(again);
    const s2 = await again.openSession(clip, { autoAcquire: false });
    const err = await refusal(s2.decryptFragment(clip));
    expect(err.code).toBe('LICENSE_EXPIRED');
    expect(again.status().clock.rollbackDetected).toBe(true);
    expect([...seen, ...againSeen]).toContain('clock-rollback');
    device.state.wallOffsetMs = 0;
  });

  it('chains leaves to subscription roots: a leaf with two roots, a root that lapses and is renewed', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box, { rootRenewalLeadMs: 2 * DAY });
    const root = await agent.licenses.acquire({
      contentId: 'sub-basic',
      serverUrl: licenseUrl(),
      persist: true,
    });
    expect(root.license.chain.role).toBe('root');
    const leaf = await agent.licenses.acquire({
      keyIds: [kidOf(4)],
      serverUrl: licenseUrl(),
      persist: true,
    });
    expect(leaf.license.chain.roots).toEqual([
      { id: 'sub-basic', usable: true },
      { id: 'sub-premium', usable: false },
    ]);
    const clip = await packageClip(work, 'leaf', {
      kid: kidOf(4),
      key: keyOf(4),
      licenseUrl: licenseUrl(),
      contentId: 'title-4',
    });
    const session = await agent.openSession(clip, { autoAcquire: false });
    expect(await differencesFromClear(await session.decryptFragment(clip))).toEqual([]);
    // The root lapses (offline: no renewal): the leaf goes with it.
    box.cable.connected = false;
    time.advance(31 * DAY);
    await agent.maintain();
    const err = await refusal(session.decryptFragment(clip));
    // The leaf reports its root's reason: the subscription lapsed because renewal failed.
    expect(err.code).toBe('RENEWAL_FAILED');
    expect(session.keyStatuses().get(hex(kidOf(4)))).toBe('expired');
    // Back online: after the retry interval, maintenance renews the root, and the same
    // leaf plays again.
    box.cable.connected = true;
    time.advance(2 * 60_000);
    await agent.maintain();
    const [r] = await agent.licenses.select({ contentId: 'sub-basic' });
    expect(r).toMatchObject({ usable: true });
    expect(r!.chain.leaves).toContain(leaf.license.id);
    expect(await differencesFromClear(await session.decryptFragment(clip))).toEqual([]);
    // Renewed ahead of its end: the lead time puts the next renewal before expiry.
    expect(r!.renewAtMs!).toBeLessThan(r!.playableUntilMs!);
  });

  it('renews a subscription root ahead of its end, while online', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box, { rootRenewalLeadMs: 2 * DAY });
    const seen = events(agent);
    const root = await agent.licenses.acquire({
      contentId: 'sub-premium',
      serverUrl: licenseUrl(),
    });
    const end = root.license.playableUntilMs!;
    expect(root.license.renewAtMs).toBe(end - 2 * DAY);
    time.advance(27 * DAY);
    await agent.maintain();
    expect(seen).not.toContain('renewing');
    time.advance(DAY + HOUR); // inside the lead time
    await agent.maintain();
    expect(seen).toContain('renewed');
    const [after] = await agent.licenses.select({ contentId: 'sub-premium' });
    expect(after!.usable).toBe(true);
    expect(after!.playableUntilMs!).toBeGreaterThan(end);
  });

  it('plays on inside the renewal recovery window while the server is unreachable, then stops', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    const clip = await packageClip(work, 'renewable', {
      kid: kidOf(6),
      key: keyOf(6),
      licenseUrl: licenseUrl(),
      contentId: 'title-6',
    });
    const session = await agent.openSession(clip);
    const [first] = await agent.licenses.select(kidOf(6));
    // Renewal 30 min after issue; playable at worst until the hour plus the 2 h recovery.
    expect(first!.playableUntilMs! - first!.renewAtMs!).toBe(30 * 60_000 + 2 * HOUR);
    box.cable.connected = false;
    time.advance(90 * 60_000); // 30 min past the license's hour: renewals fail
    await agent.maintain();
    expect(await differencesFromClear(await session.decryptFragment(clip))).toEqual([]);
    time.advance(2 * HOUR); // past the 2 h recovery window
    const err = await refusal(session.decryptFragment(clip));
    expect(err.code).toBe('RENEWAL_FAILED');
    // Back online: the next retry renews it, and it plays again.
    box.cable.connected = true;
    time.advance(5 * 60_000);
    await agent.maintain();
    expect(await differencesFromClear(await session.decryptFragment(clip))).toEqual([]);
  });

  it('a leaf plays with either of its two roots', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    await agent.licenses.acquire({ contentId: 'sub-premium', serverUrl: licenseUrl() });
    const leaf = await agent.licenses.acquire({ keyIds: [kidOf(4)], serverUrl: licenseUrl() });
    expect(leaf.license.chain.roots).toEqual([
      { id: 'sub-basic', usable: false },
      { id: 'sub-premium', usable: true },
    ]);
    expect(leaf.license.usable).toBe(true);
  });

  it('auto-joins the domain on a domain-required answer, enforces the maximum, and leaves', async () => {
    const boxes = [1, 2, 3].map(() => new Box(undefined, time.device()));
    const agents = await Promise.all(boxes.map((b) => agentOn(b)));
    const seen = events(agents[0]!);
    const first = await agents[0]!.licenses.acquire({
      keyIds: [kidOf(5)],
      serverUrl: licenseUrl(),
      customData: '{"account":"family-1"}',
    });
    expect(seen).toContain('joining-domain');
    expect(first.license.usable).toBe(true);
    expect(agents[0]!.domain.list()[0]).toMatchObject({ accountId: 'family-1' });
    await agents[1]!.domain.join('family-1', 'kitchen');
    const full = await refusal(agents[2]!.domain.join('family-1', 'garage'));
    expect(full).toMatchObject({ code: 'DOMAIN_FULL', number: 6040 });
    // One leaves; the third joins in its place and gets a domain-bound license.
    await agents[1]!.domain.leave();
    expect(agents[1]!.domain.list()).toEqual([]);
    await agents[2]!.domain.join('family-1', 'garage');
    const third = await agents[2]!.licenses.acquire({
      keyIds: [kidOf(5)],
      serverUrl: licenseUrl(),
    });
    expect(third.license.usable).toBe(true);
  });

  it('renews its domain membership when the operator removes a device and the key rotates', async () => {
    const [boxA, boxB] = [new Box(undefined, time.device()), new Box(undefined, time.device())];
    const [a, b] = [await agentOn(boxA), await agentOn(boxB)];
    const account = '{"account":"family-2"}';
    await a.licenses.acquire({ keyIds: [kidOf(5)], serverUrl: licenseUrl(), customData: account });
    await b.domain.join('family-2', 'bedroom');
    const before = a.domain.list()[0]!.revision;
    // The operator removes B: the domain key rotates, A's revision is now outdated.
    await he.headend.admin.removeDomainDevice('family-2', b.status().deviceId!);
    const seen = events(a);
    const renewing: string[] = [];
    a.on('renewing-domain', (e) => renewing.push(e.accountId));
    const again = await a.licenses.acquire({
      keyIds: [kidOf(5)],
      serverUrl: licenseUrl(),
      customData: account,
    });
    expect(renewing).toEqual(['family-2']);
    expect(seen).toContain('domain-joined');
    expect(a.domain.list()[0]!.revision).toBeGreaterThan(before);
    expect(again.license.usable).toBe(true);
  });

  it('releases securely: pending while the server is down, confirmed after a restart', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    const seen = events(agent);
    const got = await agent.licenses.acquire({
      contentId: 'title-2',
      serverUrl: licenseUrl(),
      persist: true,
    });
    box.cable.connected = false;
    const r = await agent.licenses.remove(got.license.id);
    expect(r).toMatchObject({ released: false, pending: true });
    expect(seen).toContain('release-pending');
    const [pending] = await agent.licenses.select(kidOf(2));
    expect(pending).toMatchObject({ state: 'release-pending', usable: false, status: 'released' });
    await agent.close();
    box.cable.connected = true;
    const again = await agentOn(box);
    expect(again.licenses.pendingReleases()).toEqual([got.license.id]);
    await again.maintain(); // what the timer runs at start-up
    expect(again.licenses.pendingReleases()).toEqual([]);
    expect(await again.licenses.select(kidOf(2))).toEqual([]);
  });

  it('applies operator revocations: keys turn revoked in open sessions, stored licenses go', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    const clip = await packageClip(work, 'revoke', {
      kid: kidOf(2),
      key: keyOf(2),
      licenseUrl: licenseUrl(),
      contentId: 'title-2',
    });
    await agent.licenses.acquire({ contentId: 'title-2', serverUrl: licenseUrl(), persist: true });
    const session = await agent.openSession(clip, { autoAcquire: false });
    await session.decryptFragment(clip);
    const changes: string[] = [];
    session.on('keystatuseschange', (m) => changes.push(m.get(hex(kidOf(2)))!));
    const ids = await agent.applyRevocations({ kids: [hex(kidOf(2))] });
    expect(ids).toHaveLength(1);
    expect(changes).toEqual(['revoked']);
    expect((await refusal(session.decryptFragment(clip))).code).toBe('LICENSE_REVOKED');
    expect(agent.store.list()).toEqual([]);
    // Idempotent, and a revoked device plays nothing at all.
    expect(await agent.applyRevocations({ kids: [hex(kidOf(2))] })).toEqual(ids);
    await agent.licenses.acquire({ keyIds: [kidOf(1)], serverUrl: licenseUrl() });
    await agent.applyRevocations({ device: true });
    const s1 = await agent.openSession(
      await packageClip(work, 'revoke1', {
        kid: kidOf(1),
        key: keyOf(1),
        licenseUrl: licenseUrl(),
        contentId: 'title-1',
      }),
      { autoAcquire: false },
    );
    expect(s1.keyStatuses().get(hex(kidOf(1)))).toBe('revoked');
  });

  it('passes the request filter headers and returns the service custom data', async () => {
    const box = new Box(undefined, time.device());
    const seenHeaders: string[] = [];
    const agent = await agentOn(box, {
      transport: undefined,
      requestFilter: ({ service }) => {
        seenHeaders.push(service);
        return { authorization: 'Bearer test-token' };
      },
    });
    const got = await agent.licenses.acquire({ keyIds: [kidOf(1)], serverUrl: licenseUrl() });
    expect(got.license.usable).toBe(true);
    expect(seenHeaders).toContain('license');
  });
});

describe('agent bad input, each a coded error with the store intact', () => {
  it('refuses a license from a server with another root (wrong signing key)', async () => {
    const other = await startTestHeadend({}, undefined, time.server);
    try {
      await other.headend.admin.setPolicy('s', { 'can-persist': 'false' });
      await other.headend.admin.addContentKey({ kid: kidOf(9), key: keyOf(9), policy: 's' });
      const box = new Box(undefined, time.device());
      const agent = await agentOn(box);
      await agent.individualize();
      const err = await refusal(
        agent.licenses.acquire({ keyIds: [kidOf(9)], serverUrl: `${other.url}/v1/license` }),
      );
      expect([
        'CERT_UNTRUSTED_ROOT',
        'SIGNATURE_INVALID',
        'UNKNOWN_DEVICE',
        'CERT_CHAIN_INVALID',
      ]).toContain(err.code);
    } finally {
      await other.stop();
      removeDir(other.dir);
    }
  });

  it('refuses a stored license issued to another device', async () => {
    const a = await agentOn(new Box(undefined, time.device()));
    const got = await a.licenses.acquire({
      contentId: 'title-2',
      serverUrl: licenseUrl(),
      persist: true,
    });
    const record = await a.store.get(got.license.id);
    const bBox = new Box(undefined, time.device());
    const b = await agentOn(bBox);
    await b.individualize();
    await b.store.put({
      id: record.id,
      kids: record.kids,
      contentId: record.contentId,
      meta: record.meta,
      body: record.body,
    });
    const problems: KeywardenError[] = [];
    b.on('store-problem', (p) => problems.push(p.error));
    expect(await b.licenses.select(kidOf(2))).toEqual([]);
    expect(problems.map((p) => p.code)).toContain('LICENSE_WRONG_DEVICE');
  });

  it('reports an edited store file and keeps the other licenses', async () => {
    const box = new Box(undefined, time.device());
    const agent = await agentOn(box);
    const dir = path.join(box.stateDir, 'licenses', 'licenses');
    await agent.licenses.acquire({ contentId: 'title-2', serverUrl: licenseUrl(), persist: true });
    const before = new Set(await readdir(dir));
    await agent.licenses.acquire({ keyIds: [kidOf(3)], serverUrl: licenseUrl(), persist: true });
    const rentalFile = (await readdir(dir)).find((f) => !before.has(f));
    expect(rentalFile).toBeDefined();
    await agent.close();
    const file = path.join(dir, rentalFile!);
    const bytes = Buffer.from(await readFile(file));
    bytes[bytes.length >> 1]! ^= 0x40;
    await writeFile(file, bytes);
    const probe = await agentOn(box);
    const problems: string[] = probe.startupProblems.map((p) => p.code);
    probe.on('store-problem', (p) => problems.push(p.error.code));
    expect(await probe.licenses.select(kidOf(2))).toHaveLength(1);
    expect(await probe.licenses.select(kidOf(3))).toEqual([]);
    expect(problems).toContain('STORE_TAMPERED');
    // The edited file is still there (reported, not deleted), and the kept license plays.
    expect(await readdir(dir)).toContain(rentalFile);
  });

  it('moves a store copied from another device aside and starts a fresh one', async () => {
    const a = new Box(undefined, time.device());
    const agentA = await agentOn(a);
    await agentA.licenses.acquire({ contentId: 'title-2', serverUrl: licenseUrl(), persist: true });
    await agentA.close();
    const b = new Box(undefined, time.device());
    const agentB = await agentOn(b);
    await agentB.close();
    await cp(path.join(a.stateDir, 'licenses'), path.join(b.stateDir, 'licenses'), {
      recursive: true,
      force: true,
    });
    const again = await agentOn(b);
    const problems: string[] = [];
    again.on('store-problem', (p) => problems.push(p.error.code));
    await new Promise((r) => setImmediate(r));
    expect(problems).toContain('STORE_FOREIGN_DEVICE');
    expect(await again.licenses.select()).toEqual([]);
    expect((await readdir(b.stateDir)).some((n) => n.startsWith('licenses.foreign-'))).toBe(true);
  });
});
