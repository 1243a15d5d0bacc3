/**
 * SLOW (compiles the addon once, about 30-90 s): the addon built WITHOUT libdrm
 * (KEYWARDEN_LIBDRM=0), as on a box without libdrm-dev. A copy of binding.gyp and native/
 * is built in a temporary directory at -O0, then loaded directly: the cenc cipher still
 * works, kmsBuildInfo() says no libdrm, the libdrm backend answers available:false with
 * the reason, and the scripted backend runs the shared KMS code as before.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type {
  KmsBuildInfo,
  KmsScenario,
  NativeCencCipher,
  NativeKmsDeviceHandle,
  NativeKmsDeviceOptions,
  NativeUevent,
} from '../../src/native/binding.js';
import { loadKmsScenario } from '../../src/output/scenario.js';
import { localNodeDir } from '../../scripts/node-headers.mjs';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BUILD_TIMEOUT_MS = 240_000;

interface RawAddon {
  readonly CencCipher: new (key: Uint8Array) => NativeCencCipher;
  readonly KmsDevice: new (options: NativeKmsDeviceOptions) => NativeKmsDeviceHandle;
  kmsBuildInfo(): KmsBuildInfo;
  parseUevent(raw: Uint8Array): NativeUevent | null;
}

function codeOfRaw(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err instanceof Error && 'code' in err ? err.code : err;
  }
  return 'no error';
}

describe('addon built without libdrm (slow: compiles the addon)', () => {
  let dir = '';
  let addonPath = '';
  let addon: RawAddon;
  let scenario: KmsScenario;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'kw-no-libdrm-'));
    cpSync(path.join(ROOT, 'binding.gyp'), path.join(dir, 'binding.gyp'));
    cpSync(path.join(ROOT, 'native'), path.join(dir, 'native'), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    writeFileSync(path.join(dir, 'package.json'), '{"name":"kw-no-libdrm","private":true}\n');
    const args = [require_('node-gyp/bin/node-gyp.js'), 'rebuild', '--jobs=2'];
    const nodedir = localNodeDir();
    if (nodedir) args.push(`--nodedir=${nodedir}`);
    const result = spawnSync(process.execPath, args, {
      cwd: dir,
      env: { ...process.env, KEYWARDEN_LIBDRM: '0', CXXFLAGS: '-O0', JOBS: '2' },
      encoding: 'utf8',
      timeout: BUILD_TIMEOUT_MS - 10_000,
    });
    if (result.status !== 0) {
      throw new Error(`the build failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
    }
    addonPath = path.join(dir, 'build', 'Release', 'keywarden.node');
    addon = createRequire(import.meta.url)(addonPath) as RawAddon;
    scenario = await loadKmsScenario(path.join(ROOT, 'test/fixtures/kms/living-room.json'));
  }, BUILD_TIMEOUT_MS);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('does not link libdrm', () => {
    const ldd = spawnSync('ldd', [addonPath], { encoding: 'utf8' });
    if (ldd.status === 0) expect(ldd.stdout).not.toMatch(/libdrm/);
    expect(addon.kmsBuildInfo()).toEqual({ libdrm: false });
  });

  it('still decrypts: a CencCipher round trip', () => {
    const key = randomBytes(16);
    const clear = randomBytes(1000);
    const data = Buffer.from(clear);
    const batch = {
      scheme: 'cenc',
      cryptByteBlock: 0,
      skipByteBlock: 0,
      samples: Uint32Array.from([0, data.length, 0, 0]),
      ivs: new Uint8Array(randomBytes(16)),
      subsamples: new Uint32Array(0),
    };
    const cipher = new addon.CencCipher(key);
    cipher.encryptSync(data, batch);
    expect(data.equals(clear)).toBe(false);
    cipher.decryptSync(data, batch);
    expect(data.equals(clear)).toBe(true);
    cipher.close();
  });

  it('answers available:false from the libdrm backend, and KMS_UNAVAILABLE when strict', () => {
    const device = new addon.KmsDevice({ backend: 'libdrm', path: '/dev/dri/card0' });
    expect(device.snapshot()).toEqual({
      backend: 'libdrm',
      available: false,
      reason: 'built without libdrm',
      device: '/dev/dri/card0',
      master: false,
      connectors: [],
    });
    expect(device.requestProtection(42, 0)).toEqual({
      ok: false,
      reason: 'built without libdrm',
      contentProtection: 'unsupported',
    });
    device.close();
    expect(codeOfRaw(() => new addon.KmsDevice({ backend: 'libdrm', strict: true }))).toBe(
      'KMS_UNAVAILABLE',
    );
  });

  it('runs the scripted backend as before', async () => {
    const device = new addon.KmsDevice({ backend: 'scripted', scenario });
    try {
      expect(device.snapshot().connectors.map((c) => c.name)).toEqual([
        'HDMI-A-1',
        'Composite-1',
        'DP-1',
      ]);
      const event = new Promise<NativeUevent>((resolve) =>
        device.watch((e) => {
          if (e.connector === 42) resolve(e);
        }),
      );
      expect(device.requestProtection(42, 0)).toEqual({ ok: true, contentProtection: 'desired' });
      expect(await event).toMatchObject({ connector: 42, hotplug: true });
      expect(device.snapshot().connectors[0]?.contentProtection).toBe('enabled');
    } finally {
      device.close();
    }
  });

  it('parses uevents', () => {
    const raw = Buffer.from(
      'change@/d/card0\0ACTION=change\0DEVPATH=/d/card0\0SUBSYSTEM=drm\0HOTPLUG=1\0',
    );
    expect(addon.parseUevent(raw)).toEqual({
      action: 'change',
      devpath: '/d/card0',
      subsystem: 'drm',
      hotplug: true,
    });
  });
});

describe('binding.gyp libdrm detection', () => {
  // The `node -e` program binding.gyp runs for kw_libdrm, cflags and libs.
  const gyp = readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8');
  const program = /"kw_pkg": "node -e \\"(.*)\\""/.exec(gyp)?.[1]?.replace(/\\"/g, '"');

  function detect(arg: string, env: Record<string, string | undefined>): string {
    const r = spawnSync(process.execPath, ['-e', program ?? 'process.exit(9)', arg], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    expect(r.status).toBe(0);
    return r.stdout.trim();
  }

  it('finds the program', () => {
    expect(program).toContain('pkg-config');
  });

  it('treats a machine without pkg-config as without libdrm', () => {
    const bin = mkdtempSync(path.join(tmpdir(), 'kw-no-pkg-config-'));
    try {
      expect(detect('have', { PATH: bin })).toBe('0');
      expect(detect('cflags', { PATH: bin })).toBe('');
      expect(detect('libs', { PATH: bin })).toBe('');
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('honours KEYWARDEN_LIBDRM=0', () => {
    expect(detect('have', { KEYWARDEN_LIBDRM: '0' })).toBe('0');
    expect(detect('libs', { KEYWARDEN_LIBDRM: '0' })).toBe('');
  });

  it('finds libdrm through pkg-config where it is installed', () => {
    const installed = spawnSync('pkg-config', ['--exists', 'libdrm']).status === 0;
    expect(detect('have', { KEYWARDEN_LIBDRM: undefined })).toBe(installed ? '1' : '0');
    if (installed) expect(detect('libs', { KEYWARDEN_LIBDRM: undefined })).toContain('-ldrm');
  });
});

function require_(id: string): string {
  return createRequire(import.meta.url).resolve(id);
}
