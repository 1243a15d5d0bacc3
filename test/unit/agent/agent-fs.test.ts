/**
 * The file system seam (`AgentConfig.fs`): every file of the agent's state goes through
 * the injected file system, and disk faults injected there (EIO on fsync or rename, ENOSPC
 * on write) surface as coded IO_FAILED errors while the store keeps what it acknowledged.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, STATE_FILES } from '../../../src/agent/agent.js';
import { SealedState } from '../../../src/agent/sealed-state.js';
import { fixedSource } from '../../../src/crypto/hardware-identity.js';
import { SecureClock } from '../../../src/crypto/secure-clock.js';
import { LicenseStore, STORE_FILES, type LicenseRecord } from '../../../src/store/index.js';
import { makeRecord, prng, storageKey, tempDir } from '../../helpers/store-fixtures.js';
import { issue } from '../protocol/test-pki.js';
import { FaultyFs, type FsCall } from '../io/faulty-fs.js';

let dir: string;
let cleanup: () => Promise<void>;
let key: Uint8Array;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kw-agent-fs-'));
  key = storageKey();
});
afterEach(() => cleanup());

/** Every file under `root`, absolute. */
async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true })) {
    const p = path.join(root, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

/** The codes along an error's cause chain. */
function causeCodes(err: unknown): string[] {
  const out: string[] = [];
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as never) {
    if (typeof e.code === 'string') out.push(e.code);
  }
  return out;
}

const sameBody = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe('Agent.create with an injected file system', () => {
  it('writes every file of its state through it', async () => {
    const fs = new FaultyFs();
    const root = await issue('Operator Root', undefined, { ca: true });
    const stateDir = path.join(dir, 'state');
    const agent = await Agent.create({
      stateDir,
      provisioningUrl: 'https://headend.invalid/v1/provision',
      trustedRoot: root.der,
      identitySources: [
        fixedSource('machine-id', randomBytes(16).toString('hex')),
        fixedSource('board-serial', 'b-1'),
        fixedSource('cpu-serial', 'c-1'),
      ],
      autoMaintenance: false,
      fs,
    });
    const rec = makeRecord(prng(7), 'lic-1');
    await agent.store.put(rec);
    expect(sameBody((await agent.store.get('lic-1')).body, rec.body)).toBe(true);
    await agent.close();

    const written = fs.written();
    const onDisk = await filesUnder(stateDir);
    // The vault, the store's files and the license file, at least.
    for (const f of [
      STATE_FILES.vault,
      path.join(STATE_FILES.licenses, STORE_FILES.header),
      path.join(STATE_FILES.licenses, STORE_FILES.journal),
      path.join(STATE_FILES.licenses, STORE_FILES.anchor),
      path.join(STATE_FILES.licenses, STORE_FILES.counter),
    ]) {
      expect(onDisk).toContain(path.join(stateDir, f));
    }
    expect(onDisk.some((f) => f.endsWith('.kwl'))).toBe(true);
    // Nothing on disk that the injected fs did not create.
    for (const f of onDisk) expect(written, f).toContain(f);
    // The directories too, and the lock (taken and released through it).
    expect(written).toContain(stateDir);
    expect(written).toContain(path.join(stateDir, STATE_FILES.licenses, STORE_FILES.lock));
    // Reads went through it as well (vault, header, journal, anchor, counter).
    const reads = (c: FsCall) => c.op === 'readFile' || (c.op === 'open' && c.flags === 'r');
    expect(fs.calls.filter(reads).length).toBeGreaterThan(0);
    // Directory fsyncs are handle syncs on directories opened 'r'.
    expect(
      fs.calls.some(
        (c) => c.op === 'handle.sync' && c.path === path.join(stateDir, STATE_FILES.licenses),
      ),
    ).toBe(true);
  });
});

describe('LicenseStore with disk faults', () => {
  const storeDir = () => path.join(dir, 'store');
  const licenseDir = () => path.join(storeDir(), STORE_FILES.licenses);
  const inStore = (name: string) => path.join(storeDir(), name);
  const isLicense = (p: string) => path.dirname(p) === licenseDir() && p.endsWith('.kwl');
  const isLicenseTemp = (p: string) => path.dirname(p) === licenseDir() && p.endsWith('.tmp');

  const cases: { name: string; code: string; match: (c: FsCall) => boolean }[] = [
    {
      name: 'EIO on fsync of the new license file',
      code: 'EIO',
      match: (c) => c.op === 'handle.sync' && isLicenseTemp(c.path),
    },
    {
      name: 'EIO on rename of the new license file',
      code: 'EIO',
      match: (c) => c.op === 'rename' && c.to !== undefined && isLicense(c.to),
    },
    {
      name: 'EIO on fsync of the license directory',
      code: 'EIO',
      match: (c) => c.op === 'handle.sync' && c.path === licenseDir(),
    },
    {
      name: 'EIO on fdatasync of the anchor',
      code: 'EIO',
      match: (c) => c.op === 'handle.datasync' && c.path === inStore(STORE_FILES.anchor),
    },
    {
      name: 'EIO on fdatasync of the journal append',
      code: 'EIO',
      match: (c) => c.op === 'handle.datasync' && c.path === inStore(STORE_FILES.journal),
    },
    {
      name: 'EIO on fdatasync of the rollback counter',
      code: 'EIO',
      match: (c) => c.op === 'handle.datasync' && c.path === inStore(STORE_FILES.counter),
    },
    {
      name: 'ENOSPC on write of the new license file',
      code: 'ENOSPC',
      match: (c) => c.op === 'handle.write' && isLicenseTemp(c.path),
    },
    {
      name: 'ENOSPC on the journal append',
      code: 'ENOSPC',
      match: (c) => c.op === 'handle.write' && c.path === inStore(STORE_FILES.journal),
    },
    {
      name: 'ENOSPC on write of the anchor',
      code: 'ENOSPC',
      match: (c) => c.op === 'handle.write' && c.path === inStore(STORE_FILES.anchor),
    },
  ];

  for (const { name, code, match } of cases) {
    it(`${name}: IO_FAILED, and the acknowledged data survives a reopen`, async () => {
      const fs = new FaultyFs();
      const rand = prng(42);
      const a = makeRecord(rand, 'a');
      const a2 = makeRecord(rand, 'a'); // a renewal of 'a'
      const b = makeRecord(rand, 'b');
      const store = await LicenseStore.open({ dir: storeDir(), storageKey: key, fs });
      await store.put(a);
      await store.updateUsage('a', () => ({ playCount: 3 }));

      fs.inject({ match, code });
      const err = await caught(store.put(b));
      expect(fs.fired).toHaveLength(1);
      expect(err).toMatchObject({ code: 'IO_FAILED' });
      expect(causeCodes(err)).toContain(code); // the injected errno is kept as the cause
      // The store refuses further writes until reopened.
      await expect(store.put(a2)).rejects.toMatchObject({ code: 'IO_FAILED' });
      await store.close();

      // No temporary file of the failed write is visible to the reopened store.
      const again = await LicenseStore.open({ dir: storeDir(), storageKey: key, fs });
      expect(again.problems).toEqual([]);
      const got = await again.get('a');
      expect(sameBody(got.body, a.body)).toBe(true);
      expect(got.usage.playCount).toBe(3);
      // The interrupted put either landed whole or not at all.
      if (again.entry('b')) expect(sameBody((await again.get('b')).body, b.body)).toBe(true);
      expect(again.size).toBeLessThanOrEqual(2);
      // And the store works again.
      await again.put(b);
      expect(sameBody((await again.get('b')).body, b.body)).toBe(true);
      await again.close();
      expect((await readdir(licenseDir())).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    });
  }

  it('a renewal under ENOSPC keeps the previous version of the license', async () => {
    const fs = new FaultyFs();
    const rand = prng(5);
    const a = makeRecord(rand, 'a');
    const renewed: LicenseRecord = { ...makeRecord(rand, 'a'), contentId: a.contentId };
    const store = await LicenseStore.open({ dir: storeDir(), storageKey: key, fs });
    await store.put(a);
    fs.inject({ code: 'ENOSPC', match: (c) => c.op === 'handle.write' && isLicenseTemp(c.path) });
    await expect(store.put(renewed)).rejects.toMatchObject({ code: 'IO_FAILED' });
    await store.close();
    const again = await LicenseStore.open({ dir: storeDir(), storageKey: key, fs });
    expect(sameBody((await again.get('a')).body, a.body)).toBe(true);
    expect(again.problems).toEqual([]);
    await again.close();
  });

  it('a fault while opening is IO_FAILED and leaves the lock free', async () => {
    const fs = new FaultyFs();
    const store = await LicenseStore.open({ dir: storeDir(), storageKey: key, fs });
    await store.put(makeRecord(prng(3), 'a'));
    await store.close();
    fs.inject({ code: 'EIO', match: (c) => c.op === 'readdir' && c.path === licenseDir() });
    await expect(LicenseStore.open({ dir: storeDir(), storageKey: key, fs })).rejects.toMatchObject(
      { code: 'IO_FAILED' },
    );
    const again = await LicenseStore.open({ dir: storeDir(), storageKey: key, fs });
    expect(again.size).toBe(1);
    await again.close();
  });
});

describe('sealed state and secure clock with disk faults', () => {
  it('SealedState: ENOSPC on write or EIO on rename is IO_FAILED; the old document stays', async () => {
    const fs = new FaultyFs();
    const file = path.join(dir, 'doc.bin');
    const doc = new SealedState<{ v: number }>(file, key, 'test context', fs);
    await doc.write({ v: 1 });
    fs.inject({ code: 'ENOSPC', match: (c) => c.op === 'handle.write' && c.path !== file });
    await expect(doc.write({ v: 2 })).rejects.toMatchObject({ code: 'IO_FAILED' });
    fs.inject({ code: 'EIO', match: (c) => c.op === 'rename' && c.to === file });
    await expect(doc.write({ v: 3 })).rejects.toMatchObject({ code: 'IO_FAILED' });
    expect(fs.fired).toHaveLength(2);
    expect(await doc.read()).toEqual({ v: 1 });
    expect(await readdir(dir)).toEqual(['doc.bin']);
    expect(fs.written()).toContain(file);
  });

  it('SecureClock reads and writes its state through the injected fs', async () => {
    const fs = new FaultyFs();
    const file = path.join(dir, 'clock', 'secure-clock.bin');
    const clock = await SecureClock.open({ file, key, fs });
    await clock.anchor(Date.now());
    await clock.checkpoint();
    expect(fs.written()).toContain(file);
    expect(fs.calls.some((c) => c.op === 'readFile' && c.path === file)).toBe(true);
    fs.inject({ code: 'EIO', match: (c) => c.op === 'handle.sync', sticky: true });
    await expect(clock.checkpoint()).rejects.toMatchObject({ code: 'IO_FAILED' });
  });
});
