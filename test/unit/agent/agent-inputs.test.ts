/**
 * The agent's trust-boundary inputs that need no server: init data from players, the
 * configuration file, and the retry schedule.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../src/agent/config.js';
import { siblingUrl } from '../../../src/agent/domain-client.js';
import { parseInitData } from '../../../src/agent/init-data.js';
import { kidHex } from '../../../src/agent/license-manager.js';
import { backoffDelay, withRetry } from '../../../src/agent/retry.js';
import { isKeywardenError, kwError } from '../../../src/errors/index.js';
import { SYSTEM_IDS } from '../../../src/media/cenc-types.js';
import { encodePsshData } from '../../../src/media/pssh-data.js';
import { issue } from '../protocol/test-pki.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-agent-inputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KID_A = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const KID_B = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');

function pssh(systemId: string, kids: Buffer[], data: Uint8Array): Buffer {
  const sys = Buffer.from(systemId.replaceAll('-', ''), 'hex');
  const body = Buffer.concat([
    Buffer.from([1, 0, 0, 0]),
    sys,
    Buffer.from([0, 0, 0, kids.length]),
    ...kids,
    Buffer.from([0, 0, 0, data.length]),
    Buffer.from(data),
  ]);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length);
  head.write('pssh', 4, 'latin1');
  return Buffer.concat([head, body]);
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isKeywardenError(err)) return err.code;
    return `uncoded: ${String(err)}`;
  }
  return 'no error';
}

describe('init data', () => {
  const keywarden = pssh(
    SYSTEM_IDS.keywarden,
    [],
    encodePsshData({ keyIds: [KID_A], contentId: 'title-9', licenseUrl: 'https://lic/' }),
  );
  const common = pssh(SYSTEM_IDS.common, [KID_B], new Uint8Array(0));

  it('reads keywarden and W3C common pssh boxes', () => {
    const h = parseInitData(Buffer.concat([keywarden, common]));
    expect(h.kids).toEqual([KID_A.toString('hex'), KID_B.toString('hex')]);
    expect(h).toMatchObject({ contentId: 'title-9', licenseUrl: 'https://lic/' });
    expect(h.psshData?.length).toBeGreaterThan(0);
  });

  it('reads EME keyids JSON', () => {
    const json = JSON.stringify({ kids: [KID_A.toString('base64url')] });
    expect(parseInitData(Buffer.from(json)).kids).toEqual([KID_A.toString('hex')]);
    expect(code(() => parseInitData(Buffer.from('{"kids":["AAE"]}')))).toBe('HEADER_MALFORMED');
    expect(code(() => parseInitData(Buffer.from('{"kids":[]}')))).toBe('CONTENT_NOT_PROTECTED');
  });

  it('refuses truncated, oversized, foreign and random init data with coded errors', () => {
    const both = Buffer.concat([keywarden, common]);
    for (let cut = 1; cut < both.length; cut += 3) {
      const c = code(() => parseInitData(both.subarray(0, cut), 'cenc'));
      expect(['HEADER_MALFORMED', 'CONTENT_NOT_PROTECTED']).toContain(c);
    }
    expect(code(() => parseInitData(Buffer.alloc(5 << 20)))).toBe('HEADER_MALFORMED');
    const notPssh = Buffer.from('00000010667265650000000000000000', 'hex'); // a 'free' box
    expect(code(() => parseInitData(notPssh, 'cenc'))).toBe('HEADER_MALFORMED');
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 500; i++) {
      const junk = Buffer.from(Array.from({ length: 1 + (rnd() % 64) }, rnd));
      if (i % 3 === 0) junk.write('pssh', 4 % junk.length, 'latin1');
      const c = code(() => parseInitData(junk));
      expect(['HEADER_MALFORMED', 'CONTENT_NOT_PROTECTED']).toContain(c);
    }
  });

  it('normalizes key IDs', () => {
    expect(kidHex('00112233-4455-6677-8899-AABBCCDDEEFF')).toBe(KID_A.toString('hex'));
    expect(kidHex(KID_B)).toBe(KID_B.toString('hex'));
    expect(code(() => kidHex('xyz'))).toBe('HEADER_MALFORMED');
    expect(code(() => kidHex(new Uint8Array(15)))).toBe('HEADER_MALFORMED');
  });
});

describe('configuration file', () => {
  const rootFile = path.join(dir, 'root.der');
  const write = async (name: string, body: unknown): Promise<string> => {
    await writeFile(rootFile, (await issue('Test Root')).der);
    const file = path.join(dir, name);
    await writeFile(file, typeof body === 'string' ? body : JSON.stringify(body));
    return file;
  };
  const good = {
    stateDir: 'state',
    provisioningUrl: 'https://he.example/v1/provision',
    trustedRoot: 'root.der',
    identitySources: ['machine-id', { name: 'serial', value: 'SN-1' }],
    retry: { attempts: 3, baseDelay: '100ms', maxDelay: '2s' },
    rootRenewalLead: '2h',
    requestHeaders: { authorization: 'Bearer x' },
    fleet: { url: 'mqtts://broker:8883', protocolVersion: 4, tls: { ca: 'root.der' } },
  };

  it('loads a valid file, resolving paths and durations', async () => {
    const c = await loadAgentConfig(await write('good.json', good));
    expect(c.stateDir).toBe(path.join(dir, 'state'));
    expect(c.retry).toEqual({ attempts: 3, baseDelayMs: 100, maxDelayMs: 2000 });
    expect(c.rootRenewalLeadMs).toBe(7_200_000);
    expect(c.fleet).toEqual({
      url: 'mqtts://broker:8883',
      protocolVersion: 4,
      tls: { ca: expect.any(Buffer) },
    });
    expect(c.identitySources?.map((s) => s.name)).toEqual(['machine-id', 'serial']);
    expect(await c.requestFilter?.({ url: 'u', service: 'license' })).toEqual({
      authorization: 'Bearer x',
    });
  });

  it.each([
    ['not JSON', '{'],
    ['an array', '[]'],
    ['a typo', { ...good, provisioningURL: 'x' }],
    ['a missing stateDir', { ...good, stateDir: undefined }],
    ['a bad URL', { ...good, provisioningUrl: 'ftp://x' }],
    ['a bad duration', { ...good, rootRenewalLead: 'soon' }],
    ['an unknown identity source', { ...good, identitySources: ['dmi'] }],
    ['a missing root', { ...good, trustedRoot: 'nope.der' }],
    ['a root that is not a certificate', { ...good, trustedRoot: 'good.json' }],
    ['bad headers', { ...good, requestHeaders: { a: 1 } }],
    ['too many attempts', { ...good, retry: { attempts: 99 } }],
    ['a fleet broker that is not MQTT', { ...good, fleet: { url: 'http://broker' } }],
    ['an unknown fleet field', { ...good, fleet: { url: 'mqtt://b:1883', qos: 2 } }],
    ['a bad MQTT version', { ...good, fleet: { url: 'mqtt://b:1883', protocolVersion: 3 } }],
    ['a missing fleet TLS file', { ...good, fleet: { url: 'mqtts://b', tls: { ca: 'no.pem' } } }],
    ['a bad whenStale', { ...good, fleet: { url: 'mqtt://b:1883', whenStale: 'maybe' } }],
    ['an unknown output backend', { ...good, output: { backend: 'drm' } }],
    ['a bad drmMaster', { ...good, output: { drmMaster: 'steal' } }],
    ['an unknown output field', { ...good, output: { backend: 'auto', hdcp: true } }],
    ['a scripted backend without a scenario', { ...good, output: { backend: 'scripted' } }],
    ['a bad HDCP timeout', { ...good, output: { hdcpTimeout: 'later' } }],
  ])('refuses %s with CONFIG_INVALID', async (name, body) => {
    await write('good.json', good);
    const file = await write(`bad-${name.replaceAll(' ', '-')}.json`, body);
    await expect(loadAgentConfig(file)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('loads the output section, reading the scenario relative to the file', async () => {
    await writeFile(
      path.join(dir, 'tv.json'),
      JSON.stringify({ name: 'tv', connectors: [{ id: 1, type: 'HDMI-A' }] }),
    );
    const c = await loadAgentConfig(
      await write('output.json', {
        ...good,
        fleet: { ...good.fleet, whenStale: 'allow' },
        output: {
          backend: 'scripted',
          scenario: 'tv.json',
          hdcpTimeout: '3s',
          pollInterval: '500ms',
        },
      }),
    );
    expect(c.fleet?.whenStale).toBe('allow');
    expect(c.output).toMatchObject({ backend: 'scripted', hdcpTimeoutMs: 3000, pollMs: 500 });
    expect(c.output?.scenario?.name).toBe('tv');
    expect(c.output?.scenario?.connectors[0]?.type).toBe('HDMI-A');
  });

  it('refuses a bad scenario with KMS_SCENARIO_INVALID naming the field', async () => {
    await writeFile(
      path.join(dir, 'bad-tv.json'),
      JSON.stringify({ name: 'tv', connectors: [{ id: 1, type: 'SCART' }] }),
    );
    const err = await loadAgentConfig(
      await write('bad-output.json', {
        ...good,
        output: { backend: 'scripted', scenario: 'bad-tv.json' },
      }),
    ).catch((e: unknown) => e);
    expect(isKeywardenError(err, 'KMS_SCENARIO_INVALID'), String(err)).toBe(true);
    expect(String((err as { details: { path?: string } }).details.path)).toContain('type');
  });

  it('refuses a missing file with CONFIG_INVALID', async () => {
    await expect(loadAgentConfig(path.join(dir, 'absent.json'))).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });
  });
});

describe('retries', () => {
  it('backs off exponentially with full jitter, capped', () => {
    const p = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelay(1, p, () => 0.999)).toBe(99);
    expect(backoffDelay(3, p, () => 0.999)).toBe(399);
    expect(backoffDelay(9, p, () => 0.999)).toBe(999);
    expect(backoffDelay(2, p, () => 0)).toBe(0);
  });

  it('retries transient errors only, and stops on abort', async () => {
    let calls = 0;
    const p = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 };
    await expect(
      withRetry(async () => {
        calls++;
        throw kwError('TRANSPORT_FAILED', 'down');
      }, p),
    ).rejects.toMatchObject({ code: 'TRANSPORT_FAILED' });
    expect(calls).toBe(3);
    calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw kwError('SERVICE_SPECIFIC', 'pay your bill');
      }, p),
    ).rejects.toMatchObject({ code: 'SERVICE_SPECIFIC' });
    expect(calls).toBe(1);
    const ac = new AbortController();
    const pending = withRetry(
      async () => {
        ac.abort();
        throw kwError('TRANSPORT_FAILED', 'down');
      },
      { attempts: 5, baseDelayMs: 10_000, maxDelayMs: 10_000 },
      ac.signal,
    );
    await expect(pending).rejects.toMatchObject({ code: 'ACQUIRE_ABORTED' });
  });
});

describe('domain endpoints', () => {
  it('derives leave and members from the join URL', () => {
    expect(siblingUrl('https://he/v1/domain/join', 'leave')).toBe('https://he/v1/domain/leave');
    expect(siblingUrl('https://he/dc/', 'members')).toBe('https://he/dc/members');
  });
});
