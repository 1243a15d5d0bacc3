/**
 * The scripted-KMS scenario loader (src/output/scenario.ts): defaults, the fixtures, and a
 * KMS_SCENARIO_INVALID with the field's path for every kind of bad scenario.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isKeywardenError, type KeywardenError } from '../../../src/errors/index.js';
import {
  KMS_SCENARIO_LIMITS,
  loadKmsScenario,
  parseKmsScenario,
  validateKmsScenario,
} from '../../../src/output/scenario.js';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/kms');

function failure(fn: () => unknown): KeywardenError {
  try {
    fn();
  } catch (err) {
    if (isKeywardenError(err)) return err;
    throw err;
  }
  throw new Error('expected a KeywardenError');
}

async function asyncFailure(p: Promise<unknown>): Promise<KeywardenError> {
  try {
    await p;
  } catch (err) {
    if (isKeywardenError(err)) return err;
    throw err;
  }
  throw new Error('expected a KeywardenError');
}

const HDMI = { id: 42, type: 'HDMI-A', crtc: 61, mode: { width: 1920, height: 1080, refresh: 60 } };
const withConnectors = (...connectors: unknown[]): Record<string, unknown> => ({
  name: 't',
  connectors,
});

/** What the parser fills in on a connector given only its id and type (besides its index). */
const CONNECTOR_DEFAULTS = {
  connection: 'connected',
  crtc: 0,
  mode: null,
  sink: 'unknown',
  cgmsA: false,
} as const;

const withSteps = (...timeline: unknown[]): Record<string, unknown> => ({
  name: 't',
  connectors: [{ ...HDMI, contentProtection: 'undesired' }],
  timeline,
});

describe('parseKmsScenario: valid scenarios', () => {
  it('fills in the defaults', () => {
    expect(
      parseKmsScenario(
        JSON.stringify({
          name: 'x',
          connectors: [
            { id: 1, type: 'DP' },
            { id: 2, type: 'DP' },
          ],
        }),
      ),
    ).toEqual({
      name: 'x',
      master: true,
      atomic: true,
      netlink: true,
      connectors: [
        { id: 1, type: 'DP', index: 1, ...CONNECTOR_DEFAULTS },
        { id: 2, type: 'DP', index: 2, ...CONNECTOR_DEFAULTS },
      ],
      timeline: [],
    });
  });

  it('normalizes timeline steps and uevents', () => {
    const s = validateKmsScenario(
      withSteps(
        { atMs: 0, connector: 42, set: { contentProtection: 'enabled', hdcp: { authMs: 5 } } },
        { atMs: 0, add: { id: 7, type: 'VGA' }, uevent: false },
        { atMs: 9, remove: 7, uevent: { connector: true, property: 'EDID' } },
        { atMs: 9, connector: 42, set: { mode: null, hdcp: null } },
      ),
    );
    expect(s.timeline).toEqual([
      {
        atMs: 0,
        connector: 42,
        set: { contentProtection: 'enabled', hdcp: { authMs: 5, result: 'enabled' } },
        uevent: { hotplug: true, connector: false },
      },
      {
        atMs: 0,
        add: { id: 7, type: 'VGA', index: 1, ...CONNECTOR_DEFAULTS },
        uevent: null,
      },
      { atMs: 9, remove: 7, uevent: { hotplug: true, connector: true, property: 'EDID' } },
      {
        atMs: 9,
        connector: 42,
        set: { mode: null, hdcp: null },
        uevent: { hotplug: true, connector: false },
      },
    ]);
  });

  it.each(['living-room.json', 'shuffled-ids.json', 'vc4.json', 'not-master.json'])(
    'loads %s',
    async (file) => {
      const s = await loadKmsScenario(path.join(FIXTURES, file));
      expect(s.name.length).toBeGreaterThan(0);
      expect(s.connectors.length).toBeGreaterThan(0);
    },
  );

  it('accepts a Buffer', () => {
    expect(parseKmsScenario(Buffer.from('{"name":"b","connectors":[]}')).name).toBe('b');
  });
});

describe('parseKmsScenario: every fault is KMS_SCENARIO_INVALID with its path', () => {
  /** A case with one DP connector (id 1) whose `field` is `value`: the fault is at that field. */
  const dpField = (label: string, field: string, value: unknown): [string, unknown, string] => [
    label,
    withConnectors({ id: 1, type: 'DP', [field]: value }),
    `connectors[0].${field}`,
  ];
  const cases: [string, unknown, string][] = [
    ['not an object', [], '(root)'],
    ['unknown top-level field', { name: 'x', connectors: [], extra: 1 }, 'extra'],
    ['missing name', { connectors: [] }, 'name'],
    ['empty name', { name: '', connectors: [] }, 'name'],
    ['name too long', { name: 'n'.repeat(200), connectors: [] }, 'name'],
    ['master not boolean', { name: 'x', master: 'yes', connectors: [] }, 'master'],
    ['missing connectors', { name: 'x' }, 'connectors'],
    [
      'too many connectors',
      { name: 'x', connectors: Array.from({ length: 65 }, (_, i) => ({ id: i + 1, type: 'DP' })) },
      'connectors',
    ],
    dpField('unknown connector type', 'type', 'HDMI-C'),
    dpField('type of the wrong kind', 'type', 11),
    dpField('unknown connector field', 'colour', 'red'),
    dpField('id as string', 'id', '1'),
    dpField('id zero', 'id', 0),
    dpField('id too big', 'id', 2 ** 32),
    [
      'duplicate ids',
      withConnectors({ id: 1, type: 'DP' }, { id: 1, type: 'VGA' }),
      'connectors[1].id',
    ],
    [
      'duplicate type-index',
      withConnectors({ id: 1, type: 'DP', index: 2 }, { id: 2, type: 'DP', index: 2 }),
      'connectors[1].index',
    ],
    dpField('connection out of range', 'connection', 'maybe'),
    dpField('content protection out of range', 'contentProtection', 'on'),
    dpField('content type out of range', 'hdcpContentType', 'type2'),
    dpField('sink out of range', 'sink', 'fine'),
    dpField('cgmsA not boolean', 'cgmsA', 1),
    [
      'mode width zero',
      withConnectors({ ...HDMI, mode: { width: 0, height: 1, refresh: 60 } }),
      'connectors[0].mode.width',
    ],
    [
      'mode refresh NaN-ish',
      withConnectors({ ...HDMI, mode: { width: 1, height: 1, refresh: '60' } }),
      'connectors[0].mode.refresh',
    ],
    [
      'mode refresh huge',
      withConnectors({ ...HDMI, mode: { width: 1, height: 1, refresh: 1e6 } }),
      'connectors[0].mode.refresh',
    ],
    [
      'hdcp without the property',
      withConnectors({ ...HDMI, hdcp: { authMs: 5 } }),
      'connectors[0].hdcp',
    ],
    [
      'hdcp authMs negative',
      withConnectors({ ...HDMI, contentProtection: 'undesired', hdcp: { authMs: -5 } }),
      'connectors[0].hdcp.authMs',
    ],
    [
      'hdcp result unknown',
      withConnectors({
        ...HDMI,
        contentProtection: 'undesired',
        hdcp: { authMs: 5, result: 'maybe' },
      }),
      'connectors[0].hdcp.result',
    ],
    [
      'crtc shares an id with a connector',
      withConnectors({ ...HDMI, crtc: 42 }),
      'connectors[0].crtc',
    ],
    [
      'shared CRTC with two modes',
      withConnectors(HDMI, {
        id: 43,
        type: 'DP',
        crtc: 61,
        mode: { width: 640, height: 480, refresh: 60 },
      }),
      'connectors',
    ],
    [
      'properties: unknown name',
      { name: 'x', connectors: [], properties: { DPMS: {} } },
      'properties.DPMS',
    ],
    [
      'properties: id clash',
      { name: 'x', connectors: [HDMI], properties: { 'Content Protection': { id: 42 } } },
      'properties["Content Protection"].id',
    ],
    [
      'properties: missing enum name',
      {
        name: 'x',
        connectors: [],
        properties: { 'HDCP Content Type': { enums: { 'HDCP Type0': 1 } } },
      },
      'properties["HDCP Content Type"].enums["HDCP Type1"]',
    ],
    [
      'properties: enum value clash',
      {
        name: 'x',
        connectors: [],
        properties: { 'Content Protection': { enums: { Undesired: 0, Desired: 0, Enabled: 1 } } },
      },
      'properties["Content Protection"].enums["Desired"]',
    ],
    ['timeline not an array', { name: 'x', connectors: [], timeline: {} }, 'timeline'],
    [
      'step names an unknown connector',
      withSteps({ atMs: 1, connector: 9, set: {} }),
      'timeline[0].connector',
    ],
    [
      'step names a removed connector',
      withSteps({ atMs: 1, remove: 42 }, { atMs: 2, connector: 42, set: {} }),
      'timeline[1].connector',
    ],
    ['negative time', withSteps({ atMs: -1, connector: 42, set: {} }), 'timeline[0].atMs'],
    [
      'huge time',
      withSteps({ atMs: KMS_SCENARIO_LIMITS.maxMs + 1, connector: 42, set: {} }),
      'timeline[0].atMs',
    ],
    ['time as string', withSteps({ atMs: '5', connector: 42, set: {} }), 'timeline[0].atMs'],
    [
      'steps out of order',
      withSteps({ atMs: 5, connector: 42, set: {} }, { atMs: 4, connector: 42, set: {} }),
      'timeline[1].atMs',
    ],
    ['step without a kind', withSteps({ atMs: 1, connector: 42 }), 'timeline[0]'],
    [
      'step with two kinds',
      withSteps({ atMs: 1, connector: 42, set: {}, remove: 42 }),
      'timeline[0]',
    ],
    [
      'set of an unknown field',
      withSteps({ atMs: 1, connector: 42, set: { id: 5 } }),
      'timeline[0].set.id',
    ],
    [
      'set of a missing property',
      withSteps({ atMs: 1, connector: 42, set: { hdcpContentType: 'type1' } }),
      'timeline[0].set.hdcpContentType',
    ],
    [
      'add of an existing id',
      withSteps({ atMs: 1, add: { id: 42, type: 'DP' } }),
      'timeline[0].add.id',
    ],
    [
      'add with a connector field',
      withSteps({ atMs: 1, connector: 42, add: { id: 5, type: 'DP' } }),
      'timeline[0].connector',
    ],
    [
      'uevent property unknown',
      withSteps({ atMs: 1, connector: 42, set: {}, uevent: { property: 'Content Protect' } }),
      'timeline[0].uevent.property',
    ],
    [
      'uevent not an object',
      withSteps({ atMs: 1, connector: 42, set: {}, uevent: 'yes' }),
      'timeline[0].uevent',
    ],
    [
      'set crtc onto a connector id',
      withSteps({ atMs: 1, connector: 42, set: { crtc: 42 } }),
      'timeline[0].set.crtc',
    ],
  ];

  it.each(cases)('%s', (_label, value, where) => {
    const err = failure(() => parseKmsScenario(JSON.stringify(value), 'case.json'));
    expect(err.code).toBe('KMS_SCENARIO_INVALID');
    expect(err.details).toMatchObject({ path: where, source: 'case.json' });
    expect(err.message).toContain(`case.json: ${where}: `);
  });

  it('refuses malformed JSON', () => {
    const err = failure(() => parseKmsScenario('{"name": "x", connectors: []}', 'bad.json'));
    expect(err.code).toBe('KMS_SCENARIO_INVALID');
    expect(err.details).toMatchObject({ path: '(json)', source: 'bad.json' });
  });

  it('refuses oversized text before parsing it', () => {
    const text = JSON.stringify({
      name: 'x',
      connectors: [],
      description: 'd'.repeat(KMS_SCENARIO_LIMITS.maxBytes),
    });
    expect(failure(() => parseKmsScenario(text)).details).toMatchObject({ path: '(file)' });
  });

  it('refuses JSON with a __proto__ key rather than merging it', () => {
    const err = failure(() =>
      parseKmsScenario('{"name":"x","connectors":[],"__proto__":{"master":false}}'),
    );
    expect(err.details).toMatchObject({ path: '__proto__' });
  });

  it('refuses values only a program could build', () => {
    const cyclic: Record<string, unknown> = { name: 'x', connectors: [] };
    cyclic.timeline = [{ atMs: Infinity, connector: 1, set: {} }];
    expect(failure(() => validateKmsScenario(cyclic)).details).toMatchObject({
      path: 'timeline[0].atMs',
    });
    expect(
      failure(() =>
        validateKmsScenario(
          withConnectors({ id: 1, type: 'DP', mode: { width: 1, height: 1, refresh: NaN } }),
        ),
      ).details,
    ).toMatchObject({
      path: 'connectors[0].mode.refresh',
    });
  });
});

describe('loadKmsScenario', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kw-scenario-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses an oversized file without parsing it', async () => {
    const file = path.join(dir, 'big.json');
    await writeFile(file, Buffer.alloc(KMS_SCENARIO_LIMITS.maxBytes + 10, 0x20));
    const err = await asyncFailure(loadKmsScenario(file));
    expect(err.code).toBe('KMS_SCENARIO_INVALID');
    expect(err.details).toMatchObject({ path: '(file)', source: file });
  });

  it('names the file in a validation error', async () => {
    const file = path.join(dir, 'bad.json');
    await writeFile(file, JSON.stringify(withConnectors({ id: 1, type: 'Nope' })));
    const err = await asyncFailure(loadKmsScenario(file));
    expect(err.details).toMatchObject({ path: 'connectors[0].type', source: file });
  });

  it('gives IO_FAILED for a missing file', async () => {
    expect((await asyncFailure(loadKmsScenario(path.join(dir, 'none.json')))).code).toBe(
      'IO_FAILED',
    );
  });
});
