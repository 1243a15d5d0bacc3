import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { findChild, findChildren, parseBoxes } from '../../../../src/media/box.js';
import {
  parseAuxInfoOffsets,
  parseProtectionSystemHeader,
} from '../../../../src/media/boxes/index.js';
import { toHex, toUuid } from '../../../../src/media/bytes.js';
import { SYSTEM_IDS } from '../../../../src/media/cenc-types.js';
import { decryptBytes } from '../../../../src/media/decrypt/index.js';
import { jsCipherFactory } from '../../../../src/media/js-sample-cipher.js';
import { SYNC_SAMPLE_FLAGS, writeFragment } from '../../../../src/media/package/fragment-writer.js';
import {
  MAX_EMBEDDED_LICENSE_BYTES,
  keyPeriodOf,
  resolvePackageOptions,
  type PackageOptions,
} from '../../../../src/media/package/package-options.js';
import {
  countPackageFragments,
  fragmentPssh,
  packageFile,
} from '../../../../src/media/package/packager.js';
import { decodePsshData, encodePsshData } from '../../../../src/media/pssh-data.js';
import { parseMovieFragment } from '../../../../src/media/samples.js';
import { compareSamples, listSamples, listSamplesOf } from '../../../helpers/samples.js';
import { asyncCodeOf, codeOf } from '../../../helpers/codes.js';

const CLIP = path.resolve(
  import.meta.dirname,
  '..',
  '..',
  '..',
  'fixtures',
  'media',
  'demo-h264-aac.mp4',
);
const dir = mkdtempSync(path.join(tmpdir(), 'kw-pssh-moof-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const key = (n: number) => ({
  kid: new Uint8Array(16).fill(n),
  key: new Uint8Array(16).fill(0x40 + n),
});
const hex = (n: number): string => toHex(new Uint8Array(16).fill(n));

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

describe('PsshData.embedded_license', () => {
  it('round-trips, and is absent from the encoding when empty', () => {
    const license = Uint8Array.of(1, 2, 3, 250);
    const data = encodePsshData({ keyIds: [new Uint8Array(16)], embeddedLicense: license });
    expect(decodePsshData(data).embeddedLicense).toEqual(license);
    const without = encodePsshData({ keyIds: [new Uint8Array(16)] });
    expect(decodePsshData(without).embeddedLicense).toEqual(new Uint8Array(0));
    expect(data.length - without.length).toBe(2 + license.length);
  });
});

describe('writeFragment with pssh boxes', () => {
  const kid = new Uint8Array(16).fill(9);
  const pssh = [
    {
      version: 1,
      systemId: Uint8Array.from(Buffer.from(SYSTEM_IDS.keywarden.replace(/-/g, ''), 'hex')),
      kids: [kid],
      data: encodePsshData({ keyIds: [kid], embeddedLicense: Uint8Array.of(7, 7) }),
    },
  ];
  const fragment = concat(
    writeFragment(
      3,
      [
        {
          trackId: 1,
          baseMediaDecodeTime: 0,
          samples: [
            { size: 20, duration: 10, compositionOffset: 0, flags: SYNC_SAMPLE_FLAGS },
            { size: 12, duration: 10, compositionOffset: 0, flags: SYNC_SAMPLE_FLAGS },
          ],
          data: [new Uint8Array(20).fill(0xa1), new Uint8Array(12).fill(0xa2)],
          encryption: {
            withSubsamples: false,
            entries: [1, 2].map((n) => ({ iv: new Uint8Array(8).fill(n), subsamples: [] })),
          },
        },
      ],
      pssh,
    ),
  );

  it('puts them after mfhd, before the trafs', () => {
    const [moof] = parseBoxes(fragment);
    expect(moof!.children!.map((c) => c.type)).toEqual(['mfhd', 'pssh', 'traf']);
    const found = parseProtectionSystemHeader(findChild(moof!, 'pssh')!);
    expect(found.kids).toEqual([kid]);
    expect(decodePsshData(found.data).embeddedLicense).toEqual(Uint8Array.of(7, 7));
  });

  it('keeps the trun data offsets and the saio offset right', () => {
    const [moof] = parseBoxes(fragment);
    const tf = parseMovieFragment(moof!, undefined).trafs[0]!;
    expect(tf.samples.map((s) => fragment[s.offset])).toEqual([0xa1, 0xa2]);
    expect(tf.samples[1]!.offset + tf.samples[1]!.size).toBe(fragment.length);
    const traf = findChildren(moof!, 'traf')[0]!;
    const saio = parseAuxInfoOffsets(findChild(traf, 'saio')!);
    const senc = findChild(traf, 'senc')!;
    // default-base-is-moof: the offset counts from the moof's first byte to senc's first entry
    expect(saio.offsets[0]).toBe(senc.offset + senc.headerSize + 8);
    expect(fragment[saio.offsets[0]!]).toBe(1);
  });
});

describe('fragmentPssh', () => {
  const opts = resolvePackageOptions({
    input: 'in.mp4',
    output: 'out.mp4',
    scheme: 'cenc',
    key: key(1),
    rotationKeys: [key(2), key(3)],
    rotateEvery: 2,
    psshInMoof: true,
    embeddedLicenses: [Uint8Array.of(0xa0), Uint8Array.of(0xa1), new Uint8Array(0)],
    contentId: 'ch',
  });
  // Video rotates every 2 fragments; a clear track; audio keeps its own key.
  const kidOf = (n: number): Uint8Array => new Uint8Array(16).fill(n);
  const video = [1, 1, 2, 2, 3, 3];
  const jobs = [
    { encryptor: { kidFor: (i: number) => kidOf(video[i] ?? 1) } },
    {},
    { encryptor: { kidFor: () => kidOf(9) } },
  ];

  it('lists the current KIDs, then the next period`s, in both systems', () => {
    const [kw, common] = fragmentPssh(opts, jobs, 1, 6);
    expect(toUuid(kw!.systemId)).toBe(SYSTEM_IDS.keywarden);
    expect(toUuid(common!.systemId)).toBe(SYSTEM_IDS.common);
    expect(kw!.kids.map(toHex)).toEqual([hex(1), hex(9), hex(2)]);
    expect(common!.kids).toEqual(kw!.kids);
    expect(common!.data.length).toBe(0);
    const data = decodePsshData(kw!.data);
    expect(data.keyIds).toEqual(kw!.kids);
    expect(data.embeddedLicense).toEqual(Uint8Array.of(0xa0));
    expect(data.contentId).toBe('ch');
    expect(data.protectionScheme).toBe('cenc');
  });

  it('carries each period`s embedded license, and names no next KID in the last period', () => {
    const third = fragmentPssh(opts, jobs, 2, 6)[0]!;
    expect(decodePsshData(third.data).embeddedLicense).toEqual(Uint8Array.of(0xa1));
    const last = fragmentPssh(opts, jobs, 5, 6)[0]!;
    expect(last.kids.map(toHex)).toEqual([hex(3), hex(9)]);
    expect(decodePsshData(last.data).embeddedLicense).toEqual(new Uint8Array(0));
    // A stream that ends inside period 1 announces no period 2.
    expect(fragmentPssh(opts, jobs, 2, 4)[0]!.kids.map(toHex)).toEqual([hex(2), hex(9)]);
  });

  it('without rotation keys the whole stream is one period', () => {
    const single = resolvePackageOptions({ ...opts, rotationKeys: [], embeddedLicenses: [] });
    expect(keyPeriodOf(single, 0)).toBe(0);
    expect(keyPeriodOf(single, 99)).toBe(0);
    expect(keyPeriodOf(opts, 0)).toBe(0);
    expect(keyPeriodOf(opts, 3)).toBe(1);
    expect(
      fragmentPssh(single, [{ encryptor: { kidFor: () => key(1).kid } }], 7, 10)[0]!.kids,
    ).toEqual([key(1).kid]);
  });
});

describe('package options for live streams', () => {
  const base: PackageOptions = { input: 'a.mp4', output: 'b.mp4', scheme: 'cbcs', key: key(1) };

  it('embedded licenses need --pssh-in-moof and stay under the size limit', () => {
    expect(
      codeOf(() => resolvePackageOptions({ ...base, embeddedLicenses: [Uint8Array.of(1)] })),
    ).toBe('CLI_USAGE');
    const big = new Uint8Array(MAX_EMBEDDED_LICENSE_BYTES + 1);
    expect(
      codeOf(() => resolvePackageOptions({ ...base, psshInMoof: true, embeddedLicenses: [big] })),
    ).toBe('CLI_USAGE');
    const ok = resolvePackageOptions({ ...base, psshInMoof: true });
    expect(ok.psshInMoof).toBe(true);
    expect(ok.embeddedLicenses).toEqual([]);
    expect(resolvePackageOptions(base).psshInMoof).toBe(false);
  });
});

describe('packageFile --pssh-in-moof', () => {
  const live: Omit<PackageOptions, 'output'> = {
    input: CLIP,
    scheme: 'cbcs',
    key: key(1),
    rotationKeys: [key(2), key(3)],
    rotateEvery: 2,
    fragmentMs: 1000,
    psshInMoof: true,
    cipherFactory: jsCipherFactory,
  };

  it('writes pssh boxes in every moof, decrypts to the clear clip and reports the periods', async () => {
    const output = path.join(dir, 'live.mp4');
    const fragments = await countPackageFragments({ ...live, output });
    const periods = Math.ceil(fragments / 2);
    const licenses = Array.from({ length: periods }, (_, p) => Uint8Array.of(0xe0 + p));
    const report = await packageFile({ ...live, output, embeddedLicenses: licenses });
    expect(report.fragments).toBe(fragments);
    expect(report.keyPeriods).toBe(periods);
    expect(report.psshInMoof).toBe(true);
    const buf = readFileSync(output);
    const moofs = parseBoxes(buf).filter((b) => b.type === 'moof');
    expect(moofs).toHaveLength(fragments);
    moofs.forEach((moof, i) => {
      const found = findChildren(moof, 'pssh').map(parseProtectionSystemHeader);
      expect(found.map((p) => toUuid(p.systemId))).toEqual([
        SYSTEM_IDS.keywarden,
        SYSTEM_IDS.common,
      ]);
      expect(decodePsshData(found[0]!.data).embeddedLicense).toEqual(licenses[Math.floor(i / 2)]);
    });
    const { output: clear } = await decryptBytes(buf, {
      keys: [key(1), key(2), key(3)],
      cipherFactory: jsCipherFactory,
    });
    expect(compareSamples(listSamplesOf(clear), await listSamples(CLIP))).toEqual([]);
  });

  it('refuses a wrong number of embedded licenses before writing anything', async () => {
    const output = path.join(dir, 'refused.mp4');
    const code = await asyncCodeOf(
      packageFile({ ...live, output, embeddedLicenses: [Uint8Array.of(1)] }),
    );
    expect(code).toBe('CLI_USAGE');
    expect(existsSync(output)).toBe(false);
  });

  it('without the option the moofs carry no pssh', async () => {
    const output = path.join(dir, 'plain.mp4');
    await packageFile({ ...live, output, psshInMoof: false });
    const moofs = parseBoxes(readFileSync(output)).filter((b) => b.type === 'moof');
    expect(moofs.every((m) => findChildren(m, 'pssh').length === 0)).toBe(true);
  });
});
