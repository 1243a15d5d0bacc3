/**
 * The KMS device contract (src/native/binding.ts, native/kms.*): one suite, a function of a
 * device factory, run on the scripted backend and, where /dev/dri/card* exists, on the real
 * libdrm backend. What only a scenario can set up (hot-plug timelines, HDCP outcomes,
 * shuffled ids) is in kms-scripted.test.ts.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  KMS_CONNECTOR_TYPES,
  kmsBuildInfo,
  openKmsDevice,
  type KmsDevice,
  type KmsOpenOptions,
  type NativeKmsConnector,
} from '../../../src/native/binding.js';
import { loadKmsScenario } from '../../../src/output/scenario.js';
import { codeOf } from '../../helpers/codes.js';
import { KMS_FIXTURES, runKmsChild } from './kms-helpers.js';

/** The kernel's connector name prefix: the type, but "DIN" for 9PinDIN. */
function kernelPrefix(c: NativeKmsConnector): string {
  return c.type === '9PinDIN' ? 'DIN' : c.type;
}

export interface KmsContractTarget {
  /** Shown in the suite name. */
  readonly label: string;
  readonly options: () => KmsOpenOptions | Promise<KmsOpenOptions>;
}

/** The behaviour every backend must show. */
export function kmsDeviceContract(target: KmsContractTarget): void {
  const open = async (): Promise<KmsDevice> => openKmsDevice(await target.options());

  it('reports a well-formed snapshot', async () => {
    const device = await open();
    try {
      const s = device.snapshot();
      expect(['libdrm', 'scripted']).toContain(s.backend);
      expect(typeof s.available).toBe('boolean');
      expect(typeof s.master).toBe('boolean');
      expect(typeof s.device).toBe('string');
      if (!s.available) {
        expect(s.reason).toMatch(/./);
        expect(s.connectors).toEqual([]);
      }
      const ids = new Set<number>();
      const names = new Set<string>();
      for (const c of s.connectors) {
        expect(Number.isInteger(c.id) && c.id > 0).toBe(true);
        expect(KMS_CONNECTOR_TYPES).toContain(c.type);
        expect(c.name).toBe(`${kernelPrefix(c)}-${c.typeIndex}`);
        expect(['connected', 'disconnected', 'unknown']).toContain(c.connection);
        expect(['unsupported', 'undesired', 'desired', 'enabled']).toContain(c.contentProtection);
        expect(['unsupported', 'type0', 'type1']).toContain(c.hdcpContentType);
        expect(['unknown', 'ok', 'revoked', 'tampered']).toContain(c.sink);
        expect(typeof c.cgmsA).toBe('boolean');
        if (c.active) {
          expect(c.crtcId).toBeGreaterThan(0);
          expect(c.mode).not.toBeNull();
        }
        if (c.mode) {
          expect(c.mode.width).toBeGreaterThan(0);
          expect(c.mode.height).toBeGreaterThan(0);
          expect(c.mode.refresh).toBeGreaterThan(0);
        }
        ids.add(c.id);
        names.add(c.name);
      }
      expect(ids.size).toBe(s.connectors.length);
      expect(names.size).toBe(s.connectors.length);
    } finally {
      device.close();
    }
  });

  it('refuses HDCP where it is unsupported or the connector does not exist', async () => {
    const device = await open();
    try {
      const s = device.snapshot();
      const missing = device.requestProtection(0xfffffff0, 0);
      expect(missing.ok).toBe(false);
      expect(missing.reason).toMatch(/./);
      for (const c of s.connectors.filter((x) => x.contentProtection === 'unsupported')) {
        const r = device.requestProtection(c.id, 0);
        expect(r).toMatchObject({ ok: false, contentProtection: 'unsupported' });
        expect(r.reason).toMatch(/Content Protection/);
      }
    } finally {
      device.close();
    }
  });

  it('says "not DRM master" instead of committing without master', async () => {
    const device = await open();
    try {
      const s = device.snapshot();
      if (s.master) return;
      for (const c of s.connectors.filter((x) => x.contentProtection === 'undesired')) {
        expect(device.requestProtection(c.id, 0)).toEqual({
          ok: false,
          reason: 'not DRM master',
          contentProtection: 'undesired',
        });
      }
    } finally {
      device.close();
    }
  });

  it('checks its arguments', async () => {
    const device = await open();
    try {
      expect(codeOf(() => device.requestProtection(0, 0))).toBe('NATIVE_BAD_ARGUMENT');
      expect(codeOf(() => device.requestProtection(1.5, 0))).toBe('NATIVE_BAD_ARGUMENT');
      expect(codeOf(() => device.requestProtection(1, 2 as 0))).toBe('NATIVE_BAD_ARGUMENT');
      expect(codeOf(() => device.releaseProtection(-1))).toBe('NATIVE_BAD_ARGUMENT');
      expect(codeOf(() => device.watch(42 as unknown as () => void))).toBe('NATIVE_BAD_ARGUMENT');
    } finally {
      device.close();
    }
  });

  it('closes idempotently; later calls throw NATIVE_CLOSED', async () => {
    const device = await open();
    device.watch(() => {});
    expect(codeOf(() => device.watch(() => {}))).toBe('NATIVE_BAD_ARGUMENT');
    expect(device.closed).toBe(false);
    device.close();
    device.close();
    expect(device.closed).toBe(true);
    expect(codeOf(() => device.snapshot())).toBe('NATIVE_CLOSED');
    expect(codeOf(() => device.requestProtection(1, 0))).toBe('NATIVE_CLOSED');
    expect(codeOf(() => device.releaseProtection(1))).toBe('NATIVE_CLOSED');
    expect(codeOf(() => device.watch(() => {}))).toBe('NATIVE_CLOSED');
    device.unref();
    device.ref();
  });

  it('lets a process watching through an unref’d device exit on its own', async () => {
    const r = await runKmsChild(
      await target.options(),
      `device.watch(() => {}); device.unref(); console.log('ready');`,
      5000,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('ready');
    expect(r.killed).toBe(false);
    expect(r.code).toBe(0);
  });

  it('keeps a process alive while it watches ref’d (unref then ref again)', async () => {
    const r = await runKmsChild(
      await target.options(),
      `device.watch(() => {}); device.unref(); device.ref(); console.log('ready');`,
      800,
    );
    expect(r.stdout).toContain('ready');
    expect(r.killed).toBe(true);
  });

  it('exits cleanly on process.exit() while its threads run', async () => {
    const r = await runKmsChild(
      await target.options(),
      `device.watch(() => {});
       for (const c of device.snapshot().connectors) device.requestProtection(c.id, 0);
       setTimeout(() => process.exit(7), 20);`,
    );
    expect(r.stderr).toBe('');
    expect(r.killed).toBe(false);
    expect(r.code).toBe(7);
  });
}

function scripted(file: string): () => Promise<KmsOpenOptions> {
  return async () => ({
    backend: 'scripted',
    scenario: await loadKmsScenario(path.join(KMS_FIXTURES, file)),
  });
}

describe('KMS contract: scripted backend, living-room.json', () => {
  kmsDeviceContract({ label: 'living-room', options: scripted('living-room.json') });
});

describe('KMS contract: scripted backend, not-master.json', () => {
  kmsDeviceContract({ label: 'not-master', options: scripted('not-master.json') });
});

describe('KMS contract: scripted backend, vc4.json', () => {
  kmsDeviceContract({ label: 'vc4', options: scripted('vc4.json') });
});

function drmCards(): string[] {
  try {
    return readdirSync('/dev/dri').filter((n) => /^card\d+$/.test(n));
  } catch {
    return [];
  }
}

const cards = drmCards();
const libdrm = kmsBuildInfo().libdrm;
const skipReason = !libdrm
  ? 'the addon was built without libdrm'
  : cards.length === 0
    ? 'no /dev/dri/card* on this machine'
    : '';
if (skipReason) console.warn(`SKIP: KMS contract on the real libdrm backend: ${skipReason}`);

describe.skipIf(skipReason !== '')(
  `KMS contract: libdrm backend on /dev/dri${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    kmsDeviceContract({ label: 'libdrm', options: () => ({ backend: 'libdrm' }) });
  },
);

// Without a card the libdrm backend still opens, answers "unavailable", and watches netlink.
describe.skipIf(cards.length > 0)('KMS contract: libdrm backend with no DRM device', () => {
  kmsDeviceContract({ label: 'libdrm (no device)', options: () => ({ backend: 'libdrm' }) });

  it('answers available:false with the reason', () => {
    const device = openKmsDevice({ backend: 'libdrm' });
    try {
      expect(device.snapshot()).toEqual({
        backend: 'libdrm',
        available: false,
        reason: libdrm ? 'no DRM device (/dev/dri/card* not found)' : 'built without libdrm',
        device: '',
        master: false,
        connectors: [],
      });
      expect(device.requestProtection(42, 0)).toMatchObject({
        ok: false,
        contentProtection: 'unsupported',
      });
    } finally {
      device.close();
    }
  });

  it('throws KMS_DEVICE_FAILED for a path that cannot be opened', () => {
    if (!libdrm) return;
    expect(codeOf(() => openKmsDevice({ backend: 'libdrm', path: '/dev/dri/card99' }))).toBe(
      'KMS_DEVICE_FAILED',
    );
  });
});
