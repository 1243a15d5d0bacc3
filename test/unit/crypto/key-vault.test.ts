import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pkcs8Of, verifyP256 } from '../../../src/crypto/ecdsa.js';
import { eciesUnwrap, eciesWrap } from '../../../src/crypto/ecies.js';
import {
  CPU_SERIAL,
  fixedSource,
  readHardwareIdentity,
  type IdentityFs,
} from '../../../src/crypto/hardware-identity.js';
import { SoftwareKeyVault } from '../../../src/crypto/key-vault.js';

const coded = (code: string): Error => expect.objectContaining({ code }) as Error;
const identity = (m: string, b: string, c: string) =>
  readHardwareIdentity([
    fixedSource('machine-id', m),
    fixedSource('board-serial', b),
    fixedSource('cpu-serial', c),
  ]);

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kw-vault-'));
  file = path.join(dir, 'device-key.json');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('hardware identity', () => {
  it('reads the CPU serial from an injected /proc/cpuinfo', async () => {
    const fs: IdentityFs = {
      readText: async (p) => {
        if (p === '/proc/cpuinfo') return 'processor\t: 0\nSerial\t\t: 00000000ABCDEF01\n';
        throw new Error('ENOENT');
      },
    };
    expect(await CPU_SERIAL.read(fs)).toBe('abcdef01');
    const id = await readHardwareIdentity(undefined, fs);
    expect(Object.keys(id.sources)).toEqual(['cpu-serial']);
  });

  it('refuses when no source is readable', async () => {
    const fs: IdentityFs = { readText: () => Promise.reject(new Error('ENOENT')) };
    await expect(readHardwareIdentity(undefined, fs)).rejects.toThrow(
      coded('HARDWARE_IDENTITY_UNAVAILABLE'),
    );
  });
});

describe('SoftwareKeyVault', () => {
  it('persists the device key and certificate, encrypted at rest, mode 0600', async () => {
    const id = await identity('m1', 'b1', 'c1');
    const v = new SoftwareKeyVault({ file, identity: id });
    expect((await v.open()).state).toBe('empty');
    const pub = await v.getOrCreateDeviceKey();
    await v.storeCertificate({
      deviceId: 'dev-1',
      certificate: Buffer.from('cert'),
      chain: [Buffer.from('ca')],
    });
    const sig = await v.sign(Buffer.from('hello'));
    expect(verifyP256(pub, Buffer.from('hello'), sig)).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const again = new SoftwareKeyVault({ file, identity: id });
    expect(await again.open()).toEqual({ state: 'ready', changedSources: [] });
    expect((await again.getOrCreateDeviceKey()).equals(pub)).toBe(true);
    expect(again.loadCertificate()?.deviceId).toBe('dev-1');
    const blob = eciesWrap(pub, Buffer.from('k'), 'ctx');
    expect(Buffer.from(eciesUnwrap(again.keyAgreement(), blob, 'ctx')).toString()).toBe('k');
  });

  it('does not hold the raw private key in the file', async () => {
    const v = new SoftwareKeyVault({ file, identity: await identity('m1', 'b1', 'c1') });
    await v.open();
    await v.getOrCreateDeviceKey();
    const text = await readFile(file);
    const raw = (v as unknown as { privateKey: import('node:crypto').KeyObject }).privateKey;
    const pkcs8 = Buffer.from(pkcs8Of(raw));
    const d = Buffer.from(raw.export({ format: 'jwk' }).d!, 'base64url');
    for (const secret of [
      pkcs8,
      d,
      Buffer.from(pkcs8.toString('base64')),
      Buffer.from(d.toString('base64')),
    ]) {
      expect(text.includes(secret)).toBe(false);
    }
  });

  it('survives a minority of sources changing, and re-binds', async () => {
    const v = new SoftwareKeyVault({ file, identity: await identity('m1', 'b1', 'c1') });
    await v.open();
    const pub = await v.getOrCreateDeviceKey();
    const moved = new SoftwareKeyVault({ file, identity: await identity('m1', 'b1', 'c2') });
    expect(await moved.open()).toEqual({ state: 'ready', changedSources: ['cpu-serial'] });
    expect((await moved.getOrCreateDeviceKey()).equals(pub)).toBe(true);
    expect(
      (await new SoftwareKeyVault({ file, identity: await identity('m1', 'b1', 'c2') }).open())
        .changedSources,
    ).toEqual([]);
  });

  it('cannot be opened when a majority changed, or on another device', async () => {
    const v = new SoftwareKeyVault({ file, identity: await identity('m1', 'b1', 'c1') });
    await v.open();
    await v.getOrCreateDeviceKey();
    const changed = new SoftwareKeyVault({ file, identity: await identity('m1', 'b2', 'c2') });
    await expect(changed.open()).rejects.toThrow(coded('VAULT_IDENTITY_MISMATCH'));
    const other = new SoftwareKeyVault({ file, identity: await identity('x', 'y', 'z') });
    await expect(other.open()).rejects.toThrow(coded('VAULT_IDENTITY_MISMATCH'));
    await expect(other.sign(Buffer.from('x'))).rejects.toThrow(coded('NOT_INDIVIDUALIZED'));
  });

  it('reports a corrupt file as VAULT_CORRUPT', async () => {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, randomBytes(100));
    const v = new SoftwareKeyVault({ file, identity: await identity('m1', 'b1', 'c1') });
    await expect(v.open()).rejects.toThrow(coded('VAULT_CORRUPT'));
  });
});
