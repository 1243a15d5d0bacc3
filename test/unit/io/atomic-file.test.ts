import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AtomicFile, syncDirectory, writeFileAtomic } from '../../../src/io/atomic-file.js';
import { NODE_FS } from '../../../src/io/fs.js';
import { tempDir } from '../../helpers/store-fixtures.js';
import { FaultyFs } from './faulty-fs.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kw-atomic-'));
});
afterEach(() => cleanup());

describe('atomic files on an injected file system', () => {
  it('goes through the injected fs: temp file, fsync, rename, directory fsync', async () => {
    const fs = new FaultyFs();
    const target = path.join(dir, 'out.bin');
    await writeFileAtomic(target, Buffer.from('hello'), 0o600, fs);
    expect(await readFile(target, 'utf8')).toBe('hello');
    const ops = fs.calls.map((c) => c.op);
    expect(ops).toEqual([
      'open',
      'handle.write',
      'handle.sync',
      'handle.close',
      'rename',
      'open',
      'handle.sync',
      'handle.close',
    ]);
    expect(fs.calls[4]).toMatchObject({ to: target });
    expect(fs.calls[5]).toMatchObject({ path: dir, flags: 'r' });
  });

  for (const [code, op] of [
    ['ENOSPC', 'handle.write'],
    ['EIO', 'handle.sync'],
    ['EIO', 'rename'],
  ] as const) {
    it(`${code} on ${op}: IO_FAILED, the target unchanged, no temporary file left`, async () => {
      const fs = new FaultyFs();
      const target = path.join(dir, 'out.bin');
      await writeFile(target, 'old');
      fs.inject({ code, match: (c) => c.op === op });
      const err = await writeFileAtomic(target, Buffer.from('new'), 0o600, fs).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'IO_FAILED' });
      expect(await readFile(target, 'utf8')).toBe('old');
      expect(await readdir(dir)).toEqual(['out.bin']);
    });
  }

  it('defaults to node:fs', async () => {
    const target = path.join(dir, 'plain.bin');
    const f = await AtomicFile.create(target);
    await f.write(Buffer.from('ab'));
    await f.write(Buffer.from('Z'), 0);
    await f.commit();
    expect(await readFile(target, 'utf8')).toBe('Zb');
    await syncDirectory(dir);
    await expect(NODE_FS.readFile(target)).resolves.toEqual(Buffer.from('Zb'));
  });
});
