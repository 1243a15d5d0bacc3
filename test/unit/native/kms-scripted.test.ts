/**
 * The scripted KMS backend (native/kms-scripted.cc) driving the shared code of native/kms.cc:
 * names and activity, matching by property name with shuffled ids and enum values, HDCP
 * requests and the fake driver's answers through uevents, timelines, DRM master, and the
 * addon's own scenario checks (scenarios that bypass src/output/scenario.ts).
 */
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

import { afterEach, describe, expect, it } from 'vitest';

import { isKeywardenError } from '../../../src/errors/index.js';
import {
  nativeInfo,
  openKmsDevice,
  type KmsDevice,
  type KmsScenario,
  type NativeKmsConnector,
} from '../../../src/native/binding.js';
import { loadKmsScenario, validateKmsScenario } from '../../../src/output/scenario.js';
import { codeOf } from '../../helpers/codes.js';
import { EventLog, KMS_FIXTURES, runKmsChild, sleep } from './kms-helpers.js';

const open: KmsDevice[] = [];
afterEach(() => {
  for (const d of open.splice(0)) d.close();
});

async function fixture(name: string): Promise<KmsScenario> {
  return loadKmsScenario(path.join(KMS_FIXTURES, name));
}

function device(scenario: KmsScenario): KmsDevice {
  const d = openKmsDevice({ backend: 'scripted', scenario });
  open.push(d);
  return d;
}

function scenario(value: unknown): KmsScenario {
  return validateKmsScenario(value, 'test');
}

function connector(d: KmsDevice, id: number): NativeKmsConnector {
  const c = d.snapshot().connectors.find((x) => x.id === id);
  if (!c) throw new Error(`no connector ${id}`);
  return c;
}

const HDMI = {
  id: 42,
  type: 'HDMI-A',
  crtc: 61,
  mode: { width: 1920, height: 1080, refresh: 60 },
  contentProtection: 'undesired',
  hdcpContentType: 'type0',
};

describe('scripted backend: enumeration', () => {
  it('names, connection, activity and modes of living-room.json', async () => {
    const d = device(await fixture('living-room.json'));
    const s = d.snapshot();
    expect(s).toMatchObject({
      backend: 'scripted',
      available: true,
      device: 'scripted:living-room',
      master: true,
    });
    expect(s.reason).toBeUndefined();
    expect(s.connectors).toEqual([
      {
        id: 42,
        name: 'HDMI-A-1',
        type: 'HDMI-A',
        typeIndex: 1,
        connection: 'connected',
        active: true,
        crtcId: 61,
        mode: { width: 1920, height: 1080, refresh: 60 },
        contentProtection: 'undesired',
        hdcpContentType: 'type0',
        sink: 'ok',
        cgmsA: false,
      },
      {
        id: 43,
        name: 'Composite-1',
        type: 'Composite',
        typeIndex: 1,
        connection: 'disconnected',
        active: false,
        crtcId: 0,
        mode: null,
        contentProtection: 'unsupported',
        hdcpContentType: 'unsupported',
        sink: 'unknown',
        cgmsA: true,
      },
      expect.objectContaining({ id: 44, name: 'DP-1', type: 'DP', active: false }),
    ]);
  });

  it('reports a vc4 without HDCP properties as unsupported', async () => {
    const d = device(await fixture('vc4.json'));
    const s = d.snapshot();
    expect(s.connectors.map((c) => [c.name, c.connection, c.active])).toEqual([
      ['HDMI-A-1', 'connected', true],
      ['HDMI-A-2', 'disconnected', false],
      ['Composite-1', 'unknown', false],
    ]);
    for (const c of s.connectors) {
      expect(c.contentProtection).toBe('unsupported');
      expect(c.hdcpContentType).toBe('unsupported');
    }
    expect(d.requestProtection(32, 0)).toEqual({
      ok: false,
      reason: 'HDMI-A-1 has no "Content Protection" property (HDCP unsupported)',
      contentProtection: 'unsupported',
    });
    expect(d.releaseProtection(32).ok).toBe(false);
  });

  it('names every connector type as the kernel does (DIN for 9PinDIN)', () => {
    const types = ['HDMI-B', 'DVI-I', 'DVI-D', 'DVI-A', 'eDP', 'SVIDEO', 'Component', '9PinDIN'];
    const d = device(
      scenario({ name: 't', connectors: types.map((type, i) => ({ id: i + 1, type })) }),
    );
    expect(d.snapshot().connectors.map((c) => c.name)).toEqual([
      'HDMI-B-1',
      'DVI-I-1',
      'DVI-D-1',
      'DVI-A-1',
      'eDP-1',
      'SVIDEO-1',
      'Component-1',
      'DIN-1',
    ]);
  });

  it('is active only with a CRTC that has a mode', () => {
    const d = device(
      scenario({
        name: 't',
        connectors: [
          { id: 1, type: 'HDMI-A', crtc: 10 },
          { id: 2, type: 'HDMI-A', crtc: 0, mode: { width: 640, height: 480, refresh: 60 } },
          { id: 3, type: 'DP', crtc: 11, mode: { width: 1280, height: 720, refresh: 23.976 } },
        ],
      }),
    );
    const [a, b, c] = d.snapshot().connectors;
    expect(a).toMatchObject({ crtcId: 10, active: false, mode: null });
    expect(b).toMatchObject({ crtcId: 0, active: false, mode: null });
    expect(c).toMatchObject({
      crtcId: 11,
      active: true,
      mode: { width: 1280, height: 720, refresh: 23.98 },
    });
  });

  it('finds the CRTC through the encoder on a driver that is not atomic', async () => {
    const s = await fixture('living-room.json');
    const d = device({ ...s, atomic: false });
    expect(connector(d, 42)).toMatchObject({ crtcId: 61, active: true });
    expect(d.requestProtection(42, 0)).toEqual({
      ok: false,
      reason: 'the driver does not support atomic modesetting',
      contentProtection: 'undesired',
    });
  });
});

describe('scripted backend: properties by name', () => {
  it('decodes shuffled property ids and enum values by their names', async () => {
    const d = device(await fixture('shuffled-ids.json'));
    const [uhd, dp] = d.snapshot().connectors;
    expect(uhd).toMatchObject({
      id: 900,
      name: 'HDMI-A-1',
      contentProtection: 'enabled',
      hdcpContentType: 'type1',
      mode: { width: 3840, height: 2160, refresh: 59.94 },
    });
    expect(dp).toMatchObject({
      id: 7,
      name: 'DP-2',
      contentProtection: 'undesired',
      hdcpContentType: 'type0',
    });
  });

  it('commits the enum values the property declares, and the uevent names its id', async () => {
    const d = device(await fixture('shuffled-ids.json'));
    const log = new EventLog(d);
    expect(d.requestProtection(7, 1)).toEqual({ ok: true, contentProtection: 'desired' });
    expect(connector(d, 7).hdcpContentType).toBe('type1');
    const event = await log.waitFor((e) => e.connector === 7);
    // properties["Content Protection"].id in the scenario.
    expect(event).toMatchObject({ subsystem: 'drm', hotplug: true, connector: 7, property: 3 });
    expect(connector(d, 7).contentProtection).toBe('enabled');
    expect(d.releaseProtection(7)).toEqual({ ok: true, contentProtection: 'undesired' });
  });
});

describe('scripted backend: requesting HDCP', () => {
  it('goes Desired, then Enabled with a PROPERTY uevent, then Undesired on release', async () => {
    const d = device(await fixture('living-room.json'));
    const log = new EventLog(d);
    const started = Date.now();
    expect(d.requestProtection(42, 0)).toEqual({ ok: true, contentProtection: 'desired' });
    expect(connector(d, 42).contentProtection).toBe('desired');
    const event = await log.waitFor((e) => e.property !== undefined);
    expect(Date.now() - started).toBeGreaterThanOrEqual(35);
    expect(event).toMatchObject({
      action: 'change',
      devpath: '/devices/platform/keywarden-scripted/drm/card0',
      subsystem: 'drm',
      hotplug: true,
      connector: 42,
    });
    expect(typeof event.seqnum).toBe('number');
    expect(connector(d, 42).contentProtection).toBe('enabled');
    // Already what was asked: nothing to commit.
    expect(d.requestProtection(42, 0)).toEqual({ ok: true, contentProtection: 'enabled' });
    expect(d.releaseProtection(42)).toEqual({ ok: true, contentProtection: 'undesired' });
    expect(d.releaseProtection(42)).toEqual({ ok: true, contentProtection: 'undesired' });
  });

  it('re-authenticates when the content type changes while enabled', async () => {
    const d = device(
      scenario({
        name: 't',
        connectors: [{ ...HDMI, contentProtection: 'enabled', hdcp: { authMs: 10 } }],
      }),
    );
    const log = new EventLog(d);
    expect(d.requestProtection(42, 1)).toEqual({ ok: true, contentProtection: 'desired' });
    await log.waitFor((e) => e.connector === 42);
    expect(connector(d, 42)).toMatchObject({
      contentProtection: 'enabled',
      hdcpContentType: 'type1',
    });
  });

  it('refuses type 1 without an "HDCP Content Type" property, allows type 0', () => {
    const noType: Record<string, unknown> = { ...HDMI };
    delete noType.hdcpContentType;
    const d = device(scenario({ name: 't', connectors: [noType] }));
    expect(d.requestProtection(42, 1)).toMatchObject({ ok: false, contentProtection: 'undesired' });
    expect(d.requestProtection(42, 1).reason).toMatch(/HDCP Content Type/);
    expect(d.requestProtection(42, 0)).toEqual({ ok: true, contentProtection: 'desired' });
    expect(connector(d, 42).hdcpContentType).toBe('unsupported');
  });

  it('stays Desired without a uevent when authentication fails', async () => {
    const d = device(
      scenario({ name: 't', connectors: [{ ...HDMI, hdcp: { authMs: 5, result: 'fail' } }] }),
    );
    const log = new EventLog(d);
    d.requestProtection(42, 0);
    await sleep(150);
    expect(log.events).toEqual([]);
    expect(connector(d, 42).contentProtection).toBe('desired');
  });

  it.each(['revoked', 'tampered'] as const)(
    'marks the sink %s and stays Desired',
    async (result) => {
      const d = device(
        scenario({ name: 't', connectors: [{ ...HDMI, hdcp: { authMs: 5, result } }] }),
      );
      const log = new EventLog(d);
      d.requestProtection(42, 0);
      await log.waitFor((e) => e.connector === 42);
      expect(connector(d, 42)).toMatchObject({ contentProtection: 'desired', sink: result });
    },
  );

  it('does not authenticate a connector that drives nothing', async () => {
    const d = device(
      scenario({ name: 't', connectors: [{ ...HDMI, crtc: 0, mode: null, hdcp: { authMs: 5 } }] }),
    );
    const log = new EventLog(d);
    expect(d.requestProtection(42, 0)).toEqual({ ok: true, contentProtection: 'desired' });
    await sleep(100);
    expect(log.events).toEqual([]);
    expect(connector(d, 42).contentProtection).toBe('desired');
  });

  it('says "not DRM master" and commits nothing without master', async () => {
    const d = device(await fixture('not-master.json'));
    const log = new EventLog(d);
    expect(d.snapshot().master).toBe(false);
    expect(d.requestProtection(42, 0)).toEqual({
      ok: false,
      reason: 'not DRM master',
      contentProtection: 'undesired',
    });
    await sleep(60);
    expect(log.events).toEqual([]);
    expect(connector(d, 42).contentProtection).toBe('undesired');
  });

  it('reports an enabled link as ok even without master', () => {
    const d = device(
      scenario({
        name: 't',
        master: false,
        connectors: [{ ...HDMI, contentProtection: 'enabled' }],
      }),
    );
    expect(d.requestProtection(42, 0)).toEqual({ ok: true, contentProtection: 'enabled' });
    expect(d.releaseProtection(42)).toEqual({
      ok: false,
      reason: 'not DRM master',
      contentProtection: 'enabled',
    });
  });
});

describe('scripted backend: timeline', () => {
  it('delivers a hot-plug from the timeline, and the snapshot shows it', async () => {
    const d = device(await fixture('living-room.json'));
    expect(connector(d, 43).active).toBe(false);
    const log = new EventLog(d);
    const event = await log.waitFor((e) => e.connector === 43);
    expect(event).toMatchObject({ hotplug: true, connector: 43 });
    expect(event.property).toBeUndefined();
    expect(connector(d, 43)).toMatchObject({
      connection: 'connected',
      active: true,
      crtcId: 62,
      mode: { width: 720, height: 576, refresh: 50 },
      cgmsA: true,
    });
  });

  it('adds and removes connectors, drops an enabled link to Desired, and can stay silent', async () => {
    const d = device(
      scenario({
        name: 't',
        connectors: [{ ...HDMI, contentProtection: 'enabled' }],
        timeline: [
          {
            atMs: 10,
            add: {
              id: 50,
              type: 'DP',
              index: 3,
              crtc: 51,
              mode: { width: 800, height: 600, refresh: 60 },
            },
          },
          {
            atMs: 20,
            connector: 42,
            set: { connection: 'disconnected' },
            uevent: { property: 'Content Protection' },
          },
          { atMs: 30, connector: 50, set: { cgmsA: true }, uevent: false },
          { atMs: 40, remove: 50, uevent: { hotplug: true, connector: true } },
        ],
      }),
    );
    const log = new EventLog(d);
    await log.waitFor((e) => e.connector === 50);
    expect(log.events.map((e) => [e.hotplug, e.connector, e.property !== undefined])).toEqual([
      [true, undefined, false],
      [true, 42, true],
      [true, 50, false],
    ]);
    expect(d.snapshot().connectors.map((c) => c.name)).toEqual(['HDMI-A-1']);
    // The kernel's rule: a link that goes while Enabled falls back to Desired.
    expect(connector(d, 42)).toMatchObject({
      connection: 'disconnected',
      contentProtection: 'desired',
    });
    const seqnums = log.events.map((e) => e.seqnum ?? 0);
    expect([...seqnums].sort((a, b) => a - b)).toEqual(seqnums);
  });

  it('starts the timeline at watch(), not at open', async () => {
    const d = device(
      scenario({
        name: 't',
        connectors: [{ id: 1, type: 'HDMI-A', connection: 'disconnected' }],
        timeline: [{ atMs: 0, connector: 1, set: { connection: 'connected' } }],
      }),
    );
    await sleep(50);
    expect(connector(d, 1).connection).toBe('disconnected');
    const log = new EventLog(d);
    await log.waitFor(() => true);
    expect(connector(d, 1).connection).toBe('connected');
  });

  it('throws UEVENT_FAILED from watch() when the scenario has no netlink', async () => {
    const d = device({ ...(await fixture('living-room.json')), netlink: false });
    expect(codeOf(() => d.watch(() => {}))).toBe('UEVENT_FAILED');
    expect(codeOf(() => d.watch(() => {}))).toBe('UEVENT_FAILED');
    expect(d.snapshot().available).toBe(true);
  });

  it('keeps delivering to a watching device that JS dropped (gc)', async () => {
    const s = scenario({
      name: 't',
      connectors: [{ id: 1, type: 'HDMI-A' }],
      timeline: [{ atMs: 400, connector: 1, set: { connection: 'disconnected' } }],
    });
    const r = await runKmsChild(
      { backend: 'scripted', scenario: s },
      `device.watch(() => { console.log('event'); process.exit(0); });
       console.log('ready');
       for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }`,
      5000,
      ['--expose-gc'],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('event');
    expect(r.code).toBe(0);
  });

  it('reports a listener that throws as an uncaught exception', async () => {
    const s = scenario({
      name: 't',
      connectors: [{ id: 1, type: 'HDMI-A' }],
      timeline: [{ atMs: 10, connector: 1, set: { connection: 'disconnected' } }],
    });
    const r = await runKmsChild(
      { backend: 'scripted', scenario: s },
      `process.on('uncaughtException', (e) => { console.log('caught ' + e.message); process.exit(3); });
       device.watch(() => { throw new Error('listener broke'); });
       console.log('ready');`,
      5000,
    );
    expect(r.stdout).toContain('caught listener broke');
    expect(r.code).toBe(3);
  });

  it('survives a worker that is terminated while it watches', async () => {
    const addon = nativeInfo().addonPath;
    const s = await fixture('living-room.json');
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const addon = require(workerData.addon);
       const d = new addon.KmsDevice({ backend: 'scripted', scenario: workerData.scenario });
       d.watch(() => {});
       d.requestProtection(42, 0);
       parentPort.postMessage('ready');`,
      { eval: true, workerData: { addon, scenario: s } },
    );
    await new Promise((resolve) => worker.once('message', resolve));
    await worker.terminate();
    // The main thread's own devices still work.
    const d = device(s);
    expect(d.snapshot().available).toBe(true);
  });
});

describe('scripted backend: the addon checks scenarios itself', () => {
  const base = { name: 'raw', connectors: [{ id: 1, type: 'HDMI-A' }] };

  function rawOpen(s: unknown): { code: string; path?: unknown } {
    try {
      openKmsDevice({ backend: 'scripted', scenario: s as KmsScenario }).close();
      return { code: 'no error' };
    } catch (err) {
      if (!isKeywardenError(err)) throw err;
      return { code: err.code, path: err.details.path };
    }
  }

  it.each([
    ['not an object', 42, '(root)'],
    ['no name', { connectors: [] }, 'name'],
    ['connectors not an array', { name: 'x', connectors: {} }, 'connectors'],
    ['unknown type', { name: 'x', connectors: [{ id: 1, type: 'HDMI-Z' }] }, 'connectors[0].type'],
    ['id 0', { name: 'x', connectors: [{ id: 0, type: 'DP' }] }, 'connectors[0].id'],
    ['fractional id', { name: 'x', connectors: [{ id: 1.5, type: 'DP' }] }, 'connectors[0].id'],
    [
      'duplicate id',
      {
        name: 'x',
        connectors: [
          { id: 1, type: 'DP' },
          { id: 1, type: 'VGA' },
        ],
      },
      'connectors[1].id',
    ],
    [
      'duplicate name',
      {
        name: 'x',
        connectors: [
          { id: 1, type: 'DP', index: 1 },
          { id: 2, type: 'DP', index: 1 },
        ],
      },
      'connectors[1].index',
    ],
    [
      'bad enum',
      { name: 'x', connectors: [{ id: 1, type: 'DP', contentProtection: 'on' }] },
      'connectors[0].contentProtection',
    ],
    [
      'huge mode',
      {
        name: 'x',
        connectors: [{ id: 1, type: 'DP', mode: { width: 1e9, height: 1, refresh: 60 } }],
      },
      'connectors[0].mode.width',
    ],
    [
      'hdcp without property',
      { name: 'x', connectors: [{ id: 1, type: 'DP', hdcp: { authMs: 1 } }] },
      'connectors[0].hdcp',
    ],
    [
      'crtc = connector id',
      { name: 'x', connectors: [{ id: 1, type: 'DP', crtc: 1 }] },
      'connectors[0].crtc',
    ],
    [
      'unknown timeline connector',
      { ...base, timeline: [{ atMs: 1, connector: 9, set: {} }] },
      'timeline[0].connector',
    ],
    [
      'negative time',
      { ...base, timeline: [{ atMs: -1, connector: 1, set: {} }] },
      'timeline[0].atMs',
    ],
    [
      'huge time',
      { ...base, timeline: [{ atMs: 1e12, connector: 1, set: {} }] },
      'timeline[0].atMs',
    ],
    [
      'out of order',
      {
        ...base,
        timeline: [
          { atMs: 5, connector: 1, set: {} },
          { atMs: 1, connector: 1, set: {} },
        ],
      },
      'timeline[1].atMs',
    ],
    [
      'two kinds',
      { ...base, timeline: [{ atMs: 1, connector: 1, set: {}, remove: 1 }] },
      'timeline[0]',
    ],
    [
      'bad uevent property',
      { ...base, timeline: [{ atMs: 1, connector: 1, set: {}, uevent: { property: 'X' } }] },
      'timeline[0].uevent.property',
    ],
    [
      'set a missing property',
      { ...base, timeline: [{ atMs: 1, connector: 1, set: { contentProtection: 'desired' } }] },
      'timeline[0].set.contentProtection',
    ],
    [
      'enum values clash',
      {
        ...base,
        properties: { 'Content Protection': { enums: { Undesired: 1, Desired: 1, Enabled: 2 } } },
      },
      'properties',
    ],
  ])('%s', (_label, s, where) => {
    const r = rawOpen(s);
    expect(r.code).toBe('KMS_SCENARIO_INVALID');
    expect(String(r.path)).toContain(where);
  });

  it('never crashes on random scenario-shaped garbage', () => {
    const atoms = [
      0,
      1,
      -1,
      1.5,
      1e300,
      NaN,
      '',
      'x',
      'HDMI-A',
      'desired',
      true,
      false,
      null,
      [],
      {},
    ];
    const keys = [
      'id',
      'type',
      'index',
      'crtc',
      'mode',
      'connection',
      'contentProtection',
      'hdcp',
      'set',
      'add',
      'remove',
      'atMs',
      'connector',
      'uevent',
      'width',
    ];
    const pick = <T>(xs: readonly T[]): T => xs[randomInt(xs.length)]!;
    const value = (depth: number): unknown => {
      if (depth > 3 || randomInt(3) === 0) return pick(atoms);
      if (randomInt(2) === 0) return Array.from({ length: randomInt(4) }, () => value(depth + 1));
      return Object.fromEntries(
        Array.from({ length: randomInt(5) }, () => [pick(keys), value(depth + 1)]),
      );
    };
    const codes = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const s = {
        name: randomInt(10) ? 'fuzz' : value(2),
        connectors: randomInt(5) ? [{ id: 1, type: 'DP', ...(value(1) as object) }] : value(1),
        timeline: value(1),
      };
      codes.add(rawOpen(s).code);
    }
    for (const code of codes) expect(['KMS_SCENARIO_INVALID', 'no error']).toContain(code);
  });
});
