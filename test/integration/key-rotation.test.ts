/**
 * Key rotation for live streams, end to end: a real head-end with a broadcast root, a
 * device with its root license, `keywarden headend live package` making a stream of several
 * key periods with embedded leaf licenses, and the device side reading each fragment's KIDs
 * and pssh, opening the embedded licenses with its root key, and decrypting every fragment.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbeddedLicense } from '../../src/agent/embedded-license.js';
import { unwrapLicense } from '../../src/agent/license-keys.js';
import { runCli } from '../helpers/media/cli-run.js';
import { agreementOf } from '../../src/crypto/ecies.js';
import { Headend } from '../../src/headend/index.js';
import { decryptBytes, type ContentKey } from '../../src/media/decrypt/index.js';
import { readFragmentKeys } from '../../src/media/fragment-keys.js';
import { decodeMessage, encodeMessage } from '../../src/protocol/codec.js';
import { MessageType, signMessage, verifyMessage } from '../../src/protocol/envelope.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import {
  compareSamples,
  listSamples,
  listSamplesOf,
  type SampleDigest,
} from '../helpers/samples.js';
import {
  TestDevice,
  licenseResponse,
  post,
  removeDir,
  startTestHeadend,
  type TestHeadend,
} from './headend-helpers.js';
import { codeOf } from '../helpers/codes.js';
import { splitSegments, type Segments } from '../helpers/segments.js';

const v1 = keywarden.v1;
const CLIP = path.resolve(import.meta.dirname, '..', 'fixtures', 'media', 'demo-h264-aac.mp4');
const CHANNEL = 'channel-1';

let he: TestHeadend;
let device: TestDevice;
let rootKey: Uint8Array;
const scratch = mkdtempSync(path.join(os.tmpdir(), 'kw-live-'));

/** Runs the CLI in-process; captures stdout and stderr. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runCli(args);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

async function headendCli(...args: string[]): Promise<string> {
  const r = await cli('headend', '--data', he.dir, ...args);
  if (r.code !== 0) throw new Error(`headend ${args.join(' ')}: exit ${r.code}: ${r.err}`);
  return r.out;
}

/** A provisioned device's root license for `root`, unwrapped with the device key. */
async function rootLicenseOf(
  d: TestDevice,
  root: string,
): Promise<{ license: keywarden.v1.ILicense; rootKey: Uint8Array }> {
  const res = await post(`${he.url}/v1/license`, d.licenseRequest({ contentId: root }));
  expect(res.status).toBe(200);
  const license = licenseResponse(res.body, he.root).license;
  if (!license) throw new Error('no root license');
  const opened = unwrapLicense(license, {
    deviceId: d.deviceId,
    device: agreementOf(d.privateKey),
  });
  if (!opened.rootKey) throw new Error('the root license carries no root key');
  return { license, rootKey: opened.rootKey };
}

async function newDevice(): Promise<TestDevice> {
  const d = new TestDevice(he.url, he.root);
  expect((await d.provision()).grant).toBeTruthy();
  return d;
}

const keysOf = (m: ReadonlyMap<string, Uint8Array>): ContentKey[] =>
  [...m].map(([kid, key]) => ({ kid: Buffer.from(kid, 'hex'), key }));

beforeAll(async () => {
  he = await startTestHeadend();
  await headendCli(
    'policy',
    'set',
    'live-root',
    '--chain',
    'root',
    '--broadcast',
    '--license-duration',
    '30d',
  );
  await headendCli('root', CHANNEL, '--policy', 'live-root');
  await headendCli('policy', 'set', 'plain-root', '--chain', 'root', '--license-duration', '30d');
  await headendCli('root', 'vod-gold', '--policy', 'plain-root');
  device = await newDevice();
  rootKey = (await rootLicenseOf(device, CHANNEL)).rootKey;
}, 60_000);

afterAll(async () => {
  await he.stop();
  removeDir(he.dir);
  rmSync(scratch, { recursive: true, force: true });
});

describe('broadcast roots', () => {
  it('give every subscribed device the same root key, each wrapped to its own device key', async () => {
    const other = await newDevice();
    const mine = await rootLicenseOf(device, CHANNEL);
    const theirs = await rootLicenseOf(other, CHANNEL);
    expect(Buffer.from(theirs.rootKey).equals(Buffer.from(mine.rootKey))).toBe(true);
    expect(mine.license.rootKey?.wrapping).toBe(v1.KeyWrapping.KEY_WRAPPING_DEVICE);
    expect(Buffer.from(mine.license.rootKey!.wrappedKey!)).not.toEqual(
      Buffer.from(theirs.license.rootKey!.wrappedKey!),
    );
    // An ordinary root still derives a key per device.
    const gold = [await rootLicenseOf(device, 'vod-gold'), await rootLicenseOf(other, 'vod-gold')];
    expect(Buffer.from(gold[0]!.rootKey).equals(Buffer.from(gold[1]!.rootKey))).toBe(false);
  });

  it('an online leaf under a broadcast root opens with the shared root key', async () => {
    await headendCli('policy', 'set', 'live-leaf', '--chain', 'leaf', '--roots', CHANNEL);
    const kid = 'abababababababababababababababab';
    const key = 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd';
    await headendCli('content', 'add', '--kid', kid, '--key', key, '--policy', 'live-leaf');
    const res = await post(
      `${he.url}/v1/license`,
      device.licenseRequest({ keyIds: [Buffer.from(kid, 'hex')] }),
    );
    const leaf = licenseResponse(res.body, he.root).license!;
    const { keys } = unwrapLicense(leaf, {
      deviceId: device.deviceId,
      device: agreementOf(device.privateKey),
      rootKeys: new Map([[CHANNEL, rootKey]]),
    });
    expect(Buffer.from(keys.get(kid)!).toString('hex')).toBe(key);
  });

  it('policy set refuses --broadcast on a policy that is not a root', async () => {
    const r = await cli('headend', '--data', he.dir, 'policy', 'set', 'bad', '--broadcast');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/HEADEND_BAD_POLICY/);
  });
});

describe('a live stream with key rotation, packaged by the head-end', () => {
  const output = path.join(scratch, 'live.mp4');
  let stream: Segments;
  let summary: { periods: { period: number; kid: string }[]; rotateEvery: number };

  beforeAll(async () => {
    const out = await headendCli(
      'live',
      'package',
      '--root',
      CHANNEL,
      '--input',
      CLIP,
      '--output',
      output,
      '--periods',
      '3',
      '--fragment-ms',
      '1000',
      '--scheme',
      'cbcs',
      '--json',
    );
    summary = JSON.parse(out) as typeof summary;
    stream = splitSegments(readFileSync(output));
  }, 60_000);

  it('has at least 3 key periods, each with its own KID', () => {
    expect(summary.periods.length).toBeGreaterThanOrEqual(3);
    expect(new Set(summary.periods.map((p) => p.kid)).size).toBe(summary.periods.length);
    expect(stream.fragments.length).toBeGreaterThanOrEqual(summary.periods.length);
  });

  it('plays through every key period: the next key is held before the first sample needing it, and every sample matches the clear clip', async () => {
    const held = new Map<string, Uint8Array>();
    const decrypted: SampleDigest[] = [];
    const kidsSeen: string[] = [];
    for (const [i, fragment] of stream.fragments.entries()) {
      // The first fragment comes with the sidx before it, as a segment would.
      const bytes = i === 0 ? Buffer.concat([stream.sidx!, fragment]) : fragment;
      const info = readFragmentKeys(bytes, stream.init);
      expect(info.sequenceNumbers).toEqual([i + 1]);
      const period = Math.floor(i / summary.rotateEvery);
      expect(info.kids).toEqual([summary.periods[period]!.kid]);
      const next = summary.periods[period + 1];
      expect(info.announcedKids).toEqual([info.kids[0], ...(next ? [next.kid] : [])]);
      expect(info.pssh.map((p) => p.systemId)).toEqual([
        '4b574152-4445-4e00-8d2e-6b6579776172',
        '1077efec-c0b2-4d02-ace3-3c1e52e2fb4b',
      ]);
      // Acquired ahead: after the first fragment, a fragment's key is already held.
      if (i > 0) for (const kid of info.kids) expect(held.has(kid), `fragment ${i + 1}`).toBe(true);
      expect(info.embeddedLicenses).toHaveLength(1);
      const opened = openEmbeddedLicense(info.embeddedLicenses[0]!, {
        trustedRoot: he.root,
        rootKeys: new Map([[CHANNEL, rootKey]]),
        nowMs: Date.now(),
      });
      expect(opened.heldRoots).toEqual([CHANNEL]);
      expect([...opened.keys.keys()]).toEqual(info.announcedKids);
      for (const [kid, key] of opened.keys) held.set(kid, key);
      const { output: clear, report } = await decryptBytes(
        fragment,
        { keys: keysOf(held) },
        stream.init,
      );
      expect(report.encryptedSamples).toBeGreaterThan(0);
      decrypted.push(...listSamplesOf(clear));
      kidsSeen.push(...info.kids);
    }
    expect(new Set(kidsSeen).size).toBe(summary.periods.length);
    expect(compareSamples(decrypted, await listSamples(CLIP))).toEqual([]);
  });

  it('a device joining mid-stream finds the keys of its first fragment and the next period in that fragment', () => {
    const start = stream.fragments.length - 2;
    const info = readFragmentKeys(stream.fragments[start]!, stream.init);
    const opened = openEmbeddedLicense(info.embeddedLicenses[0]!, {
      trustedRoot: he.root,
      rootKeys: new Map([[CHANNEL, rootKey]]),
      nowMs: Date.now(),
    });
    const following = readFragmentKeys(stream.fragments[start + 1]!, stream.init);
    for (const kid of [...info.kids, ...following.kids]) expect(opened.keys.has(kid)).toBe(true);
  });

  it('without a valid root license the embedded license does not open: ROOT_LICENSE_MISSING', async () => {
    const license = readFragmentKeys(stream.fragments[0]!, stream.init).embeddedLicenses[0]!;
    const open = (rootKeys: Map<string, Uint8Array>) => () =>
      openEmbeddedLicense(license, { trustedRoot: he.root, rootKeys, nowMs: Date.now() });
    expect(codeOf(open(new Map()))).toBe('ROOT_LICENSE_MISSING');
    const gold = (await rootLicenseOf(device, 'vod-gold')).rootKey;
    expect(codeOf(open(new Map([['vod-gold', gold]])))).toBe('ROOT_LICENSE_MISSING');
    // A key presented under the right root id but not the root's key does not unwrap.
    expect(codeOf(open(new Map([[CHANNEL, gold]])))).toBe('KEY_UNWRAP_FAILED');
    // Outside its validity (the default policy: one day after issue) it is expired.
    const later = Date.now() + 2 * 86400_000;
    expect(
      codeOf(() =>
        openEmbeddedLicense(license, {
          trustedRoot: he.root,
          rootKeys: new Map([[CHANNEL, rootKey]]),
          nowMs: later,
        }),
      ),
    ).toBe('LICENSE_EXPIRED');
  });

  it('refuses forged embedded licenses', async () => {
    const genuine = readFragmentKeys(stream.fragments[1]!, stream.init).embeddedLicenses[0]!;
    const payload = verifyMessage(genuine, MessageType.EMBEDDED_LICENSE, {
      trustedRoot: he.root,
    }).payload;
    const opts = {
      trustedRoot: he.root,
      rootKeys: new Map([[CHANNEL, rootKey]]),
      nowMs: Date.now(),
    };
    const open = (bytes: Uint8Array) => () => openEmbeddedLicense(bytes, opts);
    // Signed by a device of the same operator: its chain leads to the root, but it is no
    // license server.
    const byDevice = signMessage(MessageType.EMBEDDED_LICENSE, payload, {
      privateKey: device.privateKey,
      chain: device.chain,
    });
    expect(codeOf(open(byDevice))).toBe('SIGNATURE_INVALID');
    // Altered in transit: one byte of the signed body flipped.
    const envelope = decodeMessage(v1.SignedMessage, genuine, 'SignedMessage');
    const body = Uint8Array.from(envelope.body);
    body[body.length - 20] = (body[body.length - 20] ?? 0) ^ 0x01;
    const altered = encodeMessage(v1.SignedMessage, v1.SignedMessage.create({ ...envelope, body }));
    expect(codeOf(open(altered))).toBe('SIGNATURE_INVALID');
    // Signed by another operator's license server.
    const otherDir = mkdtempSync(path.join(os.tmpdir(), 'kw-other-'));
    const other = await Headend.open({ dataDir: otherDir, env: { KEYWARDEN_MASTER_KEY: '' } });
    try {
      const foreign = signMessage(
        MessageType.EMBEDDED_LICENSE,
        payload,
        other.ctx.pki.signer('license'),
      );
      expect(codeOf(open(foreign))).toBe('CERT_UNTRUSTED_ROOT');
    } finally {
      await other.close();
      removeDir(otherDir);
    }
    // A genuine license server signature on another message type.
    const asResponse = signMessage(
      MessageType.LICENSE_RESPONSE,
      payload,
      he.headend.ctx.pki.signer('license'),
    );
    expect(codeOf(open(asResponse))).toBe('MESSAGE_TYPE_MISMATCH');
    // A license server signature on a device-bound license is not an embedded license.
    const license = decodeMessage(v1.License, payload, 'License');
    const bound = signMessage(
      MessageType.EMBEDDED_LICENSE,
      encodeMessage(v1.License, v1.License.create({ ...license, deviceId: device.deviceId })),
      he.headend.ctx.pki.signer('license'),
    );
    expect(codeOf(open(bound))).toBe('PROTOCOL_ERROR');
    // The genuine one still opens.
    expect(openEmbeddedLicense(genuine, opts).keys.size).toBeGreaterThan(0);
  });

  it('refuses a root that is not a broadcast root', async () => {
    const r = await cli(
      'headend',
      '--data',
      he.dir,
      'live',
      'package',
      '--root',
      'vod-gold',
      '--input',
      CLIP,
      '--output',
      path.join(scratch, 'refused.mp4'),
    );
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/7415 HEADEND_BAD_POLICY: root 'vod-gold' is not a broadcast root/);
  });
});

describe('headend live license + package --pssh-in-moof --embedded-license', () => {
  it('packages a stream whose moofs carry a license made separately', async () => {
    const kid = '5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a';
    const key = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
    await headendCli('content', 'add', '--kid', kid, '--key', key, '--content-id', 'news');
    const licenseFile = path.join(scratch, 'news.kwl');
    const issued = JSON.parse(
      await headendCli(
        'live',
        'license',
        '--root',
        CHANNEL,
        '--kid',
        kid,
        '--output',
        licenseFile,
        '--json',
      ),
    ) as { kids: string[]; size: number };
    expect(issued.kids).toEqual([kid]);
    const output = path.join(scratch, 'news.mp4');
    const r = await cli(
      'package',
      CLIP,
      output,
      '--scheme',
      'cenc',
      '--key',
      `${kid}:${key}`,
      '--pssh-in-moof',
      '--embedded-license',
      licenseFile,
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/live: 1 key period\(s\), pssh in every moof/);
    const { init, fragments } = splitSegments(readFileSync(output));
    for (const fragment of fragments) {
      const info = readFragmentKeys(fragment, init);
      expect(info.announcedKids).toEqual([kid]);
      expect(Buffer.from(info.embeddedLicenses[0]!)).toEqual(readFileSync(licenseFile));
    }
    const opened = openEmbeddedLicense(readFileSync(licenseFile), {
      trustedRoot: he.root,
      rootKeys: new Map([[CHANNEL, rootKey]]),
      nowMs: Date.now(),
    });
    expect(Buffer.from(opened.keys.get(kid)!).toString('hex')).toBe(key);
    const { output: clear } = await decryptBytes(readFileSync(output), {
      keys: keysOf(opened.keys),
    });
    expect(compareSamples(listSamplesOf(clear), await listSamples(CLIP))).toEqual([]);
    // --embedded-license needs --pssh-in-moof.
    writeFileSync(path.join(scratch, 'x.kwl'), readFileSync(licenseFile));
    const bad = await cli(
      'package',
      CLIP,
      path.join(scratch, 'x.mp4'),
      '--scheme',
      'cenc',
      '--key',
      `${kid}:${key}`,
      '--embedded-license',
      path.join(scratch, 'x.kwl'),
    );
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--pssh-in-moof/);
  });
});
