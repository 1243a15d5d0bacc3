import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage } from '../../../src/protocol/codec.js';
import { MessageType, verifyMessage } from '../../../src/protocol/envelope.js';
import { keywarden } from '../../../src/protocol/generated/proto.js';
import { HeadendContext } from '../../../src/headend/headend.js';
import {
  buildRevocationList,
  canonicalRevocation,
  listDue,
  RevocationLists,
} from '../../../src/headend/fleet/revocation-lists.js';
import { FleetAdmin } from '../../../src/headend/fleet/fleet-admin.js';

const v1 = keywarden.v1;
const H = 3600_000;

describe('buildRevocationList', () => {
  const entries = [
    { kind: 'key' as const, value: 'aa'.repeat(16), revokedAt: 5, reason: 'leak', revision: 1 },
    { kind: 'device' as const, value: 'dev1', revokedAt: 6, reason: 'stolen', revision: 2 },
  ];

  it('numbers the next list, sets next_update one interval on, and keeps every entry', () => {
    const list = buildRevocationList({
      previousNumber: 41,
      issuedAt: 1000,
      intervalMs: 24 * H,
      entries,
      minAgentVersion: '1.2.3',
    });
    expect(Number(list.number)).toBe(42);
    expect(Number(list.issuedAtMs)).toBe(1000);
    expect(Number(list.nextUpdateMs)).toBe(1000 + 24 * H);
    expect(list.minAgentVersion).toBe('1.2.3');
    expect(list.entries.map((e) => [e.kind, e.value, Number(e.revokedAtMs), e.reason])).toEqual([
      [v1.RevocationEntry.Kind.KEY, 'aa'.repeat(16), 5, 'leak'],
      [v1.RevocationEntry.Kind.DEVICE, 'dev1', 6, 'stolen'],
    ]);
  });

  it('starts at 1 and refuses nonsense', () => {
    const first = buildRevocationList({
      previousNumber: 0,
      issuedAt: 1,
      intervalMs: 1,
      entries: [],
      minAgentVersion: '',
    });
    expect(Number(first.number)).toBe(1);
    expect(() =>
      buildRevocationList({
        previousNumber: -1,
        issuedAt: 1,
        intervalMs: 1,
        entries: [],
        minAgentVersion: '',
      }),
    ).toThrow();
  });

  it('is due with no list, after a change, and in the last quarter of its validity', () => {
    const latest = {
      number: 3,
      revision: 7,
      issuedAt: 0,
      nextUpdate: 24 * H,
      signed: Buffer.alloc(0),
    };
    expect(listDue({ entries: [], revision: 0, latest: undefined }, 0, 24 * H)).toBe(true);
    expect(listDue({ entries: [], revision: 8, latest }, H, 24 * H)).toBe(true);
    expect(listDue({ entries: [], revision: 7, latest }, H, 24 * H)).toBe(false);
    expect(listDue({ entries: [], revision: 7, latest }, 18 * H, 24 * H)).toBe(true);
  });

  it('canonicalizes KIDs and refuses topic characters', () => {
    expect(canonicalRevocation('key', 'AA'.repeat(16))).toBe('aa'.repeat(16));
    expect(() => canonicalRevocation('key', 'abc')).toThrow(/32 hex/);
    expect(() => canonicalRevocation('device', 'a/b')).toThrow();
    expect(() => canonicalRevocation('license', '')).toThrow();
  });
});

describe('RevocationLists over the store', () => {
  let dir: string;
  let ctx: HeadendContext;
  let now = 1_700_000_000_000;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kw-fleet-unit-'));
    ctx = await HeadendContext.open({
      dataDir: dir,
      env: { KEYWARDEN_MASTER_KEY: '' },
      clock: () => now,
    });
  });

  afterAll(async () => {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const decode = (signed: Buffer): keywarden.v1.RevocationList => {
    const verified = verifyMessage(signed, MessageType.FLEET_REVOCATION_LIST, {
      trustedRoot: ctx.pki.rootDer,
      nowMs: now,
    });
    return decodeMessage(v1.RevocationList, verified.payload, 'RevocationList');
  };

  it('issues list 1, then strictly increasing lists, signed by the fleet publisher', async () => {
    const lists = new RevocationLists(ctx);
    const first = await lists.latest();
    expect(first.number).toBe(1);
    expect(decode(first.signed).entries).toHaveLength(0);
    // Nothing changed: the same list.
    expect((await lists.issue()).number).toBe(1);

    now += 1000;
    const r = await lists.revoke('key', 'AB'.repeat(16), 'leaked');
    expect(r).toMatchObject({ added: true, value: 'ab'.repeat(16) });
    expect(r.list.number).toBe(2);
    const list = decode(r.list.signed);
    expect(Number(list.number)).toBe(2);
    expect(Number(list.nextUpdateMs) - Number(list.issuedAtMs)).toBe(24 * H);
    expect(list.minAgentVersion).toBe('0.1.0');
    expect(list.entries.map((e) => e.value)).toEqual(['ab'.repeat(16)]);

    // Revoking again adds nothing and issues nothing.
    const again = await lists.revoke('key', 'ab'.repeat(16), 'twice');
    expect(again).toMatchObject({ added: false });
    expect(again.list.number).toBe(2);

    // Refresh near next_update.
    now += 20 * H;
    expect((await lists.issue()).number).toBe(3);
    expect((await lists.issue(true)).number).toBe(4);
  });

  it('records lists by compare-and-set on the number', async () => {
    const latest = await ctx.store.latestRevocationList();
    const n = latest?.number ?? 0;
    const row = { number: n, revision: 0, issuedAt: now, nextUpdate: now, signed: Buffer.alloc(1) };
    expect(await ctx.store.recordRevocationList(row)).toBe('stale');
    expect(await ctx.store.recordRevocationList({ ...row, number: n + 2 })).toBe('stale');
    expect((await ctx.store.latestRevocationList())?.number).toBe(n);
  });

  it('finds revocations by kind for the license server', async () => {
    await ctx.store.addRevocation({
      kind: 'content',
      value: 'film-1',
      revokedAt: now,
      reason: 'x',
    });
    const hits = await ctx.store.findRevocations({
      kids: ['ab'.repeat(16), 'cd'.repeat(16)],
      contentIds: ['film-1', 'film-2'],
      licenseIds: ['film-1'],
    });
    expect(hits.map((h) => `${h.kind}:${h.value}`).sort()).toEqual([
      'content:film-1',
      `key:${'ab'.repeat(16)}`,
    ]);
  });

  it('tracks device status, acks and pending commands', async () => {
    const admin = new FleetAdmin(ctx);
    await expect(admin.command('nobody', 'wipe')).rejects.toThrow(/no device/);
    await expect(admin.command('nobody', 'explode')).rejects.toThrow(/unknown command/);
    await ctx.store.queueFleetCommand({
      id: 'c1',
      deviceId: 'd1',
      action: v1.FleetCommand.Action.WIPE,
      argument: '',
      createdAt: now,
      expiresAt: now + H,
    });
    expect(await ctx.store.pendingFleetCommands(now, { unpublishedOnly: true })).toHaveLength(1);
    await ctx.store.markFleetCommandPublished('c1', now);
    expect(await ctx.store.pendingFleetCommands(now, { unpublishedOnly: true })).toHaveLength(0);
    expect(await ctx.store.pendingFleetCommands(now, { deviceId: 'd1' })).toHaveLength(1);

    const status = {
      deviceId: 'd1',
      online: true,
      agentVersion: '1.0.0',
      licenseCount: 2,
      listNumber: 3,
      outputStatus: '',
      reportedAt: now,
      at: now,
    };
    expect(await ctx.store.recordDeviceStatus(status)).toBe('recorded');
    expect(await ctx.store.recordDeviceStatus({ ...status, listNumber: 1 })).toBe('stale');
    const ack = { deviceId: 'd1', commandId: 'c1', ok: true, errorCode: 0, message: 'wiped' };
    expect(await ctx.store.recordFleetAck({ ...ack, listNumber: 4, at: now })).toBe(true);
    expect(
      await ctx.store.recordFleetAck({ ...ack, commandId: 'zz', listNumber: 2, at: now }),
    ).toBe(false);
    expect(await ctx.store.pendingFleetCommands(now)).toHaveLength(0);
    await ctx.store.markDeviceOffline('d1', now);
    const st = await admin.status();
    const d1 = st.devices.find((d) => d.deviceId === 'd1');
    expect(d1).toMatchObject({ online: false, listApplied: 4, registered: false, pending: [] });
    expect(st.listNumber).toBeGreaterThanOrEqual(4);
  });
});
