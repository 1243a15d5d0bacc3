/**
 * Scenarios for the scripted KMS backend (native/kms-scripted.cc): a JSON description of a
 * display controller, its connectors and what happens to them over time, so that output
 * protection runs in tests and demos without a GPU. This module reads and validates them;
 * every fault is a KMS_SCENARIO_INVALID KeywardenError whose details name the field
 * (`path`, e.g. "connectors[1].type") and the file (`source`). The addon checks again.
 *
 * Format (docs/kms.md has the full reference):
 *
 *   {
 *     "name": "living-room",            // required; the device reads "scripted:living-room"
 *     "description": "...",             // optional, ignored
 *     "master": true,                   // this process holds DRM master (default true)
 *     "atomic": true,                   // the driver is atomic (default true)
 *     "netlink": true,                  // false: watch() throws UEVENT_FAILED (default true)
 *     "properties": {                   // optional: move property ids and enum values
 *       "Content Protection": { "id": 5, "enums": { "Undesired": 7, "Desired": 3, "Enabled": 1 } },
 *       "HDCP Content Type": { "id": 6, "enums": { "HDCP Type0": 4, "HDCP Type1": 2 } }
 *     },
 *     "connectors": [
 *       { "id": 42, "type": "HDMI-A", "index": 1,           // index: default next of that type
 *         "connection": "connected",                         // default "connected"
 *         "crtc": 61,                                        // default 0 (none)
 *         "mode": { "width": 1920, "height": 1080, "refresh": 60 },   // default null
 *         "contentProtection": "undesired",   // omitted: no such property ('unsupported')
 *         "hdcpContentType": "type0",         // omitted: no such property
 *         "hdcp": { "authMs": 50, "result": "enabled" },  // enabled | fail | revoked | tampered
 *         "sink": "ok",                       // unknown (default) | ok | revoked | tampered
 *         "cgmsA": false }                    // default false
 *     ],
 *     "timeline": [                          // times in ms after watch() starts, in order
 *       { "atMs": 300, "connector": 43, "set": { "connection": "connected", "crtc": 62 },
 *         "uevent": { "hotplug": true, "connector": true } },
 *       { "atMs": 500, "connector": 42, "set": { "contentProtection": "desired" },
 *         "uevent": { "property": "Content Protection" } },
 *       { "atMs": 800, "add": { "id": 44, "type": "DP" } },
 *       { "atMs": 900, "remove": 44, "uevent": false }
 *     ]
 *   }
 *
 * A connector is active when it has a CRTC and that CRTC a mode; connectors sharing a CRTC
 * share its mode. `uevent` omitted sends HOTPLUG=1; false sends nothing; `connector: true`
 * adds CONNECTOR=<id>; `property` adds CONNECTOR= and PROPERTY=<that property's id>.
 */
import { open } from 'node:fs/promises';

import { isKeywardenError, kwError } from '../errors/index.js';
import {
  KMS_CONNECTOR_TYPES,
  KMS_SCRIPTED_PROPERTY_NAMES,
  type KmsConnectorType,
  type KmsScenario,
  type KmsScenarioConnector,
  type KmsScenarioHdcp,
  type KmsScenarioMode,
  type KmsScenarioPatch,
  type KmsScenarioPropertyOverride,
  type KmsScenarioStep,
  type KmsScenarioUevent,
  type KmsScriptedPropertyName,
} from '../native/binding.js';

/** The limits of a scenario (the addon enforces the same). */
export const KMS_SCENARIO_LIMITS = Object.freeze({
  maxBytes: 1024 * 1024,
  maxNameLength: 128,
  maxConnectors: 64,
  maxTimeline: 10_000,
  maxObjectId: 1_000_000,
  maxTypeIndex: 1000,
  maxMs: 86_400_000,
  maxAuthMs: 600_000,
  maxModeSide: 16_384,
  maxRefresh: 1000,
  maxEnumValue: 0xffff_ffff,
});

const CONNECTIONS = ['connected', 'disconnected', 'unknown'] as const;
const PROTECTIONS = ['undesired', 'desired', 'enabled'] as const;
const CONTENT_TYPES = ['type0', 'type1'] as const;
const SINKS = ['unknown', 'ok', 'revoked', 'tampered'] as const;
const RESULTS = ['enabled', 'fail', 'revoked', 'tampered'] as const;
const PROPERTY_ENUMS = {
  'Content Protection': ['Undesired', 'Desired', 'Enabled'],
  'HDCP Content Type': ['HDCP Type0', 'HDCP Type1'],
} as const;
type OverridableProperty = keyof typeof PROPERTY_ENUMS;

const CONNECTOR_KEYS = [
  'id',
  'type',
  'index',
  'connection',
  'crtc',
  'mode',
  'contentProtection',
  'hdcpContentType',
  'hdcp',
  'sink',
  'cgmsA',
];
const PATCH_KEYS = CONNECTOR_KEYS.filter((k) => !['id', 'type', 'index'].includes(k));

type Json = Record<string, unknown>;

/** Reads one scenario; throws KMS_SCENARIO_INVALID with details {path, source}. */
class Validator {
  constructor(private readonly source: string) {}

  fail(path: string, problem: string, extra: Record<string, unknown> = {}): never {
    throw kwError('KMS_SCENARIO_INVALID', `${this.source}: ${path}: ${problem}`, {
      path,
      source: this.source,
      ...extra,
    });
  }

  object(value: unknown, path: string, keys: readonly string[]): Json {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(path, `must be an object, not ${describe(value)}`);
    }
    for (const key of Object.keys(value)) {
      if (!keys.includes(key))
        this.fail(
          path === '(root)' ? key : `${path}.${key}`,
          `unknown field (allowed: ${keys.join(', ')})`,
        );
    }
    return value as Json;
  }

  array(value: unknown, path: string, max: number): unknown[] {
    if (!Array.isArray(value)) this.fail(path, `must be an array, not ${describe(value)}`);
    if (value.length > max) this.fail(path, `has ${value.length} entries; at most ${max}`);
    return value;
  }

  integer(value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(path, `must be an integer from ${min} to ${max}, not ${describe(value)}`);
    }
    return value;
  }

  number(value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.fail(path, `must be a number from ${min} to ${max}, not ${describe(value)}`);
    }
    return value;
  }

  string(value: unknown, path: string, maxLength: number): string {
    if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > maxLength) {
      this.fail(path, `must be a string of 1 to ${maxLength} bytes, not ${describe(value)}`);
    }
    return value;
  }

  boolean(value: unknown, path: string, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean')
      this.fail(path, `must be true or false, not ${describe(value)}`);
    return value;
  }

  choice<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.fail(path, `must be one of ${allowed.join(', ')}, not ${describe(value)}`);
    }
    return value as T;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return `a value of type ${typeof value}`;
}

function readMode(v: Validator, value: unknown, path: string): KmsScenarioMode | null {
  if (value === null || value === undefined) return null;
  const o = v.object(value, path, ['width', 'height', 'refresh']);
  const L = KMS_SCENARIO_LIMITS;
  return {
    width: v.integer(o.width, `${path}.width`, 1, L.maxModeSide),
    height: v.integer(o.height, `${path}.height`, 1, L.maxModeSide),
    refresh: v.number(o.refresh, `${path}.refresh`, 1, L.maxRefresh),
  };
}

function readHdcp(v: Validator, value: unknown, path: string): KmsScenarioHdcp {
  const o = v.object(value, path, ['authMs', 'result']);
  return {
    authMs: v.integer(o.authMs, `${path}.authMs`, 0, KMS_SCENARIO_LIMITS.maxAuthMs),
    result: o.result === undefined ? 'enabled' : v.choice(o.result, `${path}.result`, RESULTS),
  };
}

/** The fields a connector and a `set` patch share; only those present. */
function readFields(v: Validator, o: Json, path: string): KmsScenarioPatch {
  const out: {
    -readonly [K in keyof KmsScenarioPatch]: KmsScenarioPatch[K];
  } = {};
  if (o.connection !== undefined)
    out.connection = v.choice(o.connection, `${path}.connection`, CONNECTIONS);
  if (o.crtc !== undefined)
    out.crtc = v.integer(o.crtc, `${path}.crtc`, 0, KMS_SCENARIO_LIMITS.maxObjectId);
  if ('mode' in o) out.mode = readMode(v, o.mode, `${path}.mode`);
  if (o.contentProtection !== undefined) {
    out.contentProtection = v.choice(o.contentProtection, `${path}.contentProtection`, PROTECTIONS);
  }
  if (o.hdcpContentType !== undefined) {
    out.hdcpContentType = v.choice(o.hdcpContentType, `${path}.hdcpContentType`, CONTENT_TYPES);
  }
  if (o.sink !== undefined) out.sink = v.choice(o.sink, `${path}.sink`, SINKS);
  if (o.cgmsA !== undefined) out.cgmsA = v.boolean(o.cgmsA, `${path}.cgmsA`, false);
  if ('hdcp' in o) out.hdcp = o.hdcp === null ? null : readHdcp(v, o.hdcp, `${path}.hdcp`);
  return out;
}

function applyPatch(c: KmsScenarioConnector, p: KmsScenarioPatch): KmsScenarioConnector {
  const next: { -readonly [K in keyof KmsScenarioConnector]: KmsScenarioConnector[K] } = { ...c };
  if (p.connection !== undefined) next.connection = p.connection;
  if (p.crtc !== undefined) next.crtc = p.crtc;
  if (p.mode !== undefined) next.mode = p.mode;
  if (p.contentProtection !== undefined) next.contentProtection = p.contentProtection;
  if (p.hdcpContentType !== undefined) next.hdcpContentType = p.hdcpContentType;
  if (p.sink !== undefined) next.sink = p.sink;
  if (p.cgmsA !== undefined) next.cgmsA = p.cgmsA;
  if (p.hdcp === null) delete next.hdcp;
  else if (p.hdcp !== undefined) next.hdcp = p.hdcp;
  return next;
}

function readConnector(
  v: Validator,
  value: unknown,
  path: string,
  live: readonly KmsScenarioConnector[],
): KmsScenarioConnector {
  const o = v.object(value, path, CONNECTOR_KEYS);
  const L = KMS_SCENARIO_LIMITS;
  const id = v.integer(o.id, `${path}.id`, 1, L.maxObjectId);
  const type: KmsConnectorType = v.choice(o.type, `${path}.type`, KMS_CONNECTOR_TYPES);
  const index =
    o.index === undefined
      ? Math.max(0, ...live.filter((c) => c.type === type).map((c) => c.index)) + 1
      : v.integer(o.index, `${path}.index`, 1, L.maxTypeIndex);
  const base: KmsScenarioConnector = {
    id,
    type,
    index,
    connection: 'connected',
    crtc: 0,
    mode: null,
    sink: 'unknown',
    cgmsA: false,
  };
  const fields = readFields(v, o, path);
  const connector = applyPatch(base, fields);
  if (connector.hdcp && connector.contentProtection === undefined) {
    v.fail(`${path}.hdcp`, 'needs contentProtection (the property the driver would set)');
  }
  for (const other of live) {
    if (other.id === id) v.fail(`${path}.id`, `duplicate connector id ${id}`);
    if (other.type === type && other.index === index) {
      v.fail(`${path}.index`, `duplicate connector ${type}-${index}`);
    }
  }
  return connector;
}

function readOverride(
  v: Validator,
  value: unknown,
  name: OverridableProperty,
): KmsScenarioPropertyOverride {
  const path = `properties["${name}"]`;
  const o = v.object(value, path, ['id', 'enums']);
  const out: { id?: number; enums?: Record<string, number> } = {};
  if (o.id !== undefined)
    out.id = v.integer(o.id, `${path}.id`, 1, KMS_SCENARIO_LIMITS.maxObjectId);
  if (o.enums !== undefined) {
    const names = PROPERTY_ENUMS[name];
    const e = v.object(o.enums, `${path}.enums`, names);
    const seen = new Map<number, string>();
    const enums: Record<string, number> = {};
    for (const enumName of names) {
      const at = `${path}.enums["${enumName}"]`;
      const n = v.integer(e[enumName], at, 0, KMS_SCENARIO_LIMITS.maxEnumValue);
      const clash = seen.get(n);
      if (clash !== undefined) v.fail(at, `the value ${n} is also "${clash}"`);
      seen.set(n, enumName);
      enums[enumName] = n;
    }
    out.enums = enums;
  }
  return out;
}

function readUevent(v: Validator, value: unknown, path: string): KmsScenarioUevent | null {
  if (value === undefined) return { hotplug: true, connector: false };
  if (value === false || value === null) return null;
  const o = v.object(value, path, ['hotplug', 'connector', 'property']);
  const out: { hotplug: boolean; connector: boolean; property?: KmsScriptedPropertyName } = {
    hotplug: v.boolean(o.hotplug, `${path}.hotplug`, true),
    connector: v.boolean(o.connector, `${path}.connector`, false),
  };
  if (o.property !== undefined) {
    out.property = v.choice(o.property, `${path}.property`, KMS_SCRIPTED_PROPERTY_NAMES);
  }
  return out;
}

/** Connectors sharing a CRTC share its mode: refuse a state where they disagree. */
function checkCrtcModes(v: Validator, live: readonly KmsScenarioConnector[], path: string): void {
  const modes = new Map<number, { mode: KmsScenarioMode; id: number }>();
  for (const c of live) {
    if (c.crtc === 0 || c.mode === null) continue;
    const seen = modes.get(c.crtc);
    if (!seen) {
      modes.set(c.crtc, { mode: c.mode, id: c.id });
      continue;
    }
    const m = seen.mode;
    if (m.width !== c.mode.width || m.height !== c.mode.height || m.refresh !== c.mode.refresh) {
      v.fail(path, `connectors ${seen.id} and ${c.id} share CRTC ${c.crtc} with different modes`);
    }
  }
}

function readStep(
  v: Validator,
  value: unknown,
  path: string,
  live: KmsScenarioConnector[],
  previousAt: number,
): KmsScenarioStep {
  const o = v.object(value, path, ['atMs', 'connector', 'set', 'add', 'remove', 'uevent']);
  const atMs = v.integer(o.atMs, `${path}.atMs`, 0, KMS_SCENARIO_LIMITS.maxMs);
  if (atMs < previousAt)
    v.fail(`${path}.atMs`, `steps must be in time order (${atMs} < ${previousAt})`);
  const kinds = (['set', 'add', 'remove'] as const).filter(
    (k) => o[k] !== undefined && o[k] !== null,
  );
  if (kinds.length !== 1) v.fail(path, 'needs exactly one of set, add, remove');
  const uevent = readUevent(v, o.uevent, `${path}.uevent`);
  const L = KMS_SCENARIO_LIMITS;
  const find = (id: number, at: string): number => {
    const i = live.findIndex((c) => c.id === id);
    if (i < 0) v.fail(at, `no connector ${id} exists at ${atMs} ms`);
    return i;
  };

  if (kinds[0] === 'add') {
    if (o.connector !== undefined)
      v.fail(`${path}.connector`, 'an add step names its connector in add.id');
    const add = readConnector(v, o.add, `${path}.add`, live);
    live.push(add);
    return { atMs, add, uevent };
  }
  if (kinds[0] === 'remove') {
    if (o.connector !== undefined)
      v.fail(`${path}.connector`, 'a remove step names its connector in remove');
    const remove = v.integer(o.remove, `${path}.remove`, 1, L.maxObjectId);
    live.splice(find(remove, `${path}.remove`), 1);
    return { atMs, remove, uevent };
  }
  const connector = v.integer(o.connector, `${path}.connector`, 1, L.maxObjectId);
  const i = find(connector, `${path}.connector`);
  const set = readFields(v, v.object(o.set, `${path}.set`, PATCH_KEYS), `${path}.set`);
  const current = live[i]!;
  if (set.contentProtection !== undefined && current.contentProtection === undefined) {
    v.fail(
      `${path}.set.contentProtection`,
      `connector ${connector} has no Content Protection property`,
    );
  }
  if (set.hdcpContentType !== undefined && current.hdcpContentType === undefined) {
    v.fail(
      `${path}.set.hdcpContentType`,
      `connector ${connector} has no HDCP Content Type property`,
    );
  }
  if (set.hdcp && current.contentProtection === undefined) {
    v.fail(`${path}.set.hdcp`, 'needs contentProtection (the property the driver would set)');
  }
  live[i] = applyPatch(current, set);
  return { atMs, connector, set, uevent };
}

/** KMS object ids share one space: connectors, CRTCs and property objects must not collide. */
function checkIds(v: Validator, s: KmsScenario): void {
  const owners = new Map<number, string>();
  const claim = (id: number, what: string, path: string): void => {
    const owner = owners.get(id);
    if (owner !== undefined && owner !== what)
      v.fail(path, `id ${id} is used by both ${owner} and ${what}`);
    owners.set(id, what);
  };
  const connector = (c: KmsScenarioConnector, path: string): void => {
    claim(c.id, `connector ${c.id}`, `${path}.id`);
    if (c.crtc !== 0) claim(c.crtc, 'a CRTC', `${path}.crtc`);
  };
  s.connectors.forEach((c, i) => connector(c, `connectors[${i}]`));
  s.timeline.forEach((step, i) => {
    if ('add' in step) connector(step.add, `timeline[${i}].add`);
    else if ('set' in step && step.set.crtc)
      claim(step.set.crtc, 'a CRTC', `timeline[${i}].set.crtc`);
  });
  for (const name of Object.keys(PROPERTY_ENUMS) as OverridableProperty[]) {
    const id = s.properties?.[name]?.id;
    if (id !== undefined) claim(id, `property "${name}"`, `properties["${name}"].id`);
  }
}

/**
 * Validates an already-parsed scenario object and returns it normalized (defaults filled
 * in), ready for openKmsDevice({ backend: 'scripted', scenario }).
 */
export function validateKmsScenario(value: unknown, source = 'scenario'): KmsScenario {
  const v = new Validator(source);
  const L = KMS_SCENARIO_LIMITS;
  const o = v.object(value, '(root)', [
    'name',
    'description',
    'master',
    'atomic',
    'netlink',
    'properties',
    'connectors',
    'timeline',
  ]);
  const name = v.string(o.name, 'name', L.maxNameLength);
  if (o.description !== undefined && typeof o.description !== 'string') {
    v.fail('description', `must be a string, not ${describe(o.description)}`);
  }
  let properties: KmsScenario['properties'];
  if (o.properties !== undefined) {
    const p = v.object(o.properties, 'properties', Object.keys(PROPERTY_ENUMS));
    const out: Partial<Record<OverridableProperty, KmsScenarioPropertyOverride>> = {};
    for (const key of Object.keys(PROPERTY_ENUMS) as OverridableProperty[]) {
      if (p[key] !== undefined) out[key] = readOverride(v, p[key], key);
    }
    properties = out;
  }
  const connectors: KmsScenarioConnector[] = [];
  v.array(o.connectors, 'connectors', L.maxConnectors).forEach((c, i) => {
    connectors.push(readConnector(v, c, `connectors[${i}]`, connectors));
  });
  checkCrtcModes(v, connectors, 'connectors');

  const live = [...connectors];
  const timeline: KmsScenarioStep[] = [];
  if (o.timeline !== undefined) {
    let previousAt = 0;
    v.array(o.timeline, 'timeline', L.maxTimeline).forEach((step, i) => {
      const path = `timeline[${i}]`;
      const read = readStep(v, step, path, live, previousAt);
      previousAt = read.atMs;
      checkCrtcModes(v, live, path);
      timeline.push(read);
    });
  }
  const scenario: KmsScenario = {
    name,
    master: v.boolean(o.master, 'master', true),
    atomic: v.boolean(o.atomic, 'atomic', true),
    netlink: v.boolean(o.netlink, 'netlink', true),
    ...(properties ? { properties } : {}),
    connectors,
    timeline,
  };
  checkIds(v, scenario);
  return scenario;
}

/** Parses and validates scenario JSON (at most 1 MiB). */
export function parseKmsScenario(text: string | Buffer, source = 'scenario'): KmsScenario {
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  if (size > KMS_SCENARIO_LIMITS.maxBytes) {
    throw kwError(
      'KMS_SCENARIO_INVALID',
      `${source}: (file): ${size} bytes; a scenario is at most ${KMS_SCENARIO_LIMITS.maxBytes}`,
      { path: '(file)', source, size },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch (err) {
    throw kwError(
      'KMS_SCENARIO_INVALID',
      `${source}: (json): not JSON (${(err as Error).message})`,
      { path: '(json)', source },
      err,
    );
  }
  return validateKmsScenario(value, source);
}

/** Reads a scenario file; refuses one over 1 MiB before reading it. IO_FAILED when unreadable. */
export async function loadKmsScenario(file: string): Promise<KmsScenario> {
  let data: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const limit = KMS_SCENARIO_LIMITS.maxBytes;
      if (size > limit) {
        throw kwError(
          'KMS_SCENARIO_INVALID',
          `${file}: (file): ${size} bytes; a scenario is at most ${limit}`,
          {
            path: '(file)',
            source: file,
            size,
          },
        );
      }
      // Read one byte past the limit, in case the file grew since stat().
      const buffer = Buffer.alloc(limit + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length === buffer.length) break;
      }
      data = buffer.subarray(0, length);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (isKeywardenError(err)) throw err;
    throw kwError(
      'IO_FAILED',
      `cannot read the scenario ${file}: ${(err as Error).message}`,
      { file },
      err,
    );
  }
  return parseKmsScenario(data, file);
}
