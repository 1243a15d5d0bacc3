/**
 * Output protection through the agent (issue 6): a real head-end issues licenses with output
 * protection levels, the agent reads its outputs from the scripted KMS backend (the fake
 * libdrm compiled into the addon) and enforces them while decrypting a real packaged clip.
 * - HDCP is engaged before the first key is used; the license request reports the outputs.
 * - Hot-plugging an unprotected display mid-playback stops decryption within 500 ms (6035);
 *   unplugging it resumes playback.
 * - HDCP dropping (Enabled → Desired) is 6031 until it recovers.
 * - A connector without a "Content Protection" property, a revoked sink, no DRM master.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import type { ProtocolTransport } from '../../src/agent/protocol-transport.js';
import { isKeywardenError, type KeywardenError } from '../../src/errors/index.js';
import type { KmsScenarioConnector } from '../../src/native/binding.js';
import { validateKmsScenario } from '../../src/output/scenario.js';
import { decodeMessage } from '../../src/protocol/codec.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import { Box, hex, keyOf, kidOf, packageClip, removeBoxes } from './agent-helpers.js';
import { removeDir, startTestHeadend, type TestHeadend } from './headend-helpers.js';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let he: TestHeadend;
let work: string;
const agents: Agent[] = [];
const clips = new Map<number, Buffer>();

const HDMI = (over: Partial<KmsScenarioConnector> & Record<string, unknown> = {}) => ({
  id: 42,
  type: 'HDMI-A',
  index: 1,
  connection: 'connected',
  crtc: 61,
  mode: { width: 1920, height: 1080, refresh: 60 },
  contentProtection: 'undesired',
  hdcpContentType: 'type0',
  hdcp: { authMs: 30, result: 'enabled' },
  sink: 'ok',
  ...over,
});
const VGA_UNPLUGGED = { id: 50, type: 'VGA', index: 1, connection: 'disconnected' };
/** A second HDMI port whose driver has no HDCP ("Content Protection" absent), unplugged. */
const BARE_HDMI_UNPLUGGED = { id: 51, type: 'HDMI-A', index: 2, connection: 'disconnected' };

/** Requests the agent sent to the license server, decoded. */
class RecordingTransport implements ProtocolTransport {
  readonly requests: keywarden.v1.LicenseRequest[] = [];
  constructor(private readonly inner: ProtocolTransport) {}
  async post(url: string, body: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    if (url.endsWith('/v1/license')) {
      const signed = keywarden.v1.SignedMessage.decode(body);
      const inner = keywarden.v1.SignedBody.decode(signed.body);
      if (inner.type === keywarden.v1.MessageType.LICENSE_REQUEST)
        this.requests.push(
          decodeMessage(keywarden.v1.LicenseRequest, inner.payload, 'license request'),
        );
    }
    return this.inner.post(url, body, signal);
  }
}

async function outputAgent(
  scenario: Record<string, unknown>,
  extra: { record?: RecordingTransport[] } = {},
): Promise<Agent> {
  const box = new Box();
  const transport = new RecordingTransport(box.cable);
  extra.record?.push(transport);
  const agent = await box.open(he.url, he.root, {
    transport,
    output: {
      backend: 'scripted',
      scenario: validateKmsScenario(scenario),
      hdcpTimeoutMs: 1000,
      pollMs: 0, // uevents only: the scripted timeline sends them
    },
  });
  agents.push(agent);
  return agent;
}

async function clip(n: number): Promise<Buffer> {
  let c = clips.get(n);
  if (!c) {
    c = await packageClip(work, `out-${n}`, {
      kid: kidOf(n),
      key: keyOf(n),
      licenseUrl: `${he.url}/v1/license`,
      contentId: `out-${n}`,
    });
    clips.set(n, c);
  }
  return c;
}

const codeOf = (err: unknown): string | undefined =>
  isKeywardenError(err) ? (err as KeywardenError).code : String(err);

/** Decrypts the clip over and over until `stop` says so; returns when and how each call ended. */
async function playUntil(
  decrypt: () => Promise<unknown>,
  stop: (outcome: string, at: number) => boolean,
  timeoutMs = 5000,
): Promise<{ outcome: string; at: number }> {
  const t0 = Date.now();
  for (;;) {
    const outcome = await decrypt().then(
      () => 'played',
      (err: unknown) => codeOf(err) ?? 'error',
    );
    const at = Date.now();
    if (stop(outcome, at)) return { outcome, at };
    if (at - t0 > timeoutMs) throw new Error(`still '${outcome}' after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  he = await startTestHeadend();
  work = mkdtempSync(path.join(os.tmpdir(), 'kw-agent-output-'));
  await he.headend.admin.setPolicy('hdcp-required', { 'opl-uncompressed-video': '300' });
  await he.headend.admin.setPolicy('best-effort', { 'opl-uncompressed-video': '250' });
  await he.headend.admin.setPolicy('hdcp22', { hdcp: '2.2' });
  const policies: Record<number, string> = {
    31: 'hdcp-required',
    32: 'hdcp-required',
    33: 'hdcp-required',
    34: 'best-effort',
    35: 'hdcp-required',
    36: 'hdcp22',
    37: 'hdcp-required',
  };
  for (const [n, policy] of Object.entries(policies))
    await he.headend.admin.addContentKey({
      kid: kidOf(Number(n)),
      key: keyOf(Number(n)),
      policy,
      contentId: `out-${n}`,
    });
});

afterAll(async () => {
  for (const a of agents) await a.close();
  await he?.stop();
  if (he) removeDir(he.dir);
  if (work) removeDir(work);
  removeBoxes();
});

describe('output protection in the agent (scripted KMS)', () => {
  it('engages HDCP before the first key is used, and reports the outputs to the server', async () => {
    const record: RecordingTransport[] = [];
    const agent = await outputAgent(
      { name: 'tv', connectors: [HDMI(), VGA_UNPLUGGED] },
      { record },
    );
    const session = await agent.openSession(await clip(31));
    const clear = await session.decryptFragment(await clip(31));
    expect(clear.length).toBeGreaterThan(0);
    const hdmi = agent.outputs.state.known
      ? agent.outputs.state.connectors.find((c) => c.name === 'HDMI-A-1')
      : undefined;
    expect(hdmi?.contentProtection).toBe('enabled');
    expect(session.keyStatuses().get(hex(kidOf(31)))).toBe('usable');

    const sent = record[0]!.requests.at(-1)!;
    const outputs = sent.clientInfo?.outputs ?? [];
    expect(outputs.map((o) => o.name)).toContain('HDMI-A-1');
    expect(outputs.find((o) => o.name === 'HDMI-A-1')?.type).toBe(
      keywarden.v1.ConnectorType.CONNECTOR_TYPE_HDMI,
    );
  });

  it('stops decryption within 500 ms of an unprotected display being plugged in, and resumes when it goes', async () => {
    const PLUG_MS = 1500;
    const UNPLUG_MS = 2500;
    const agent = await outputAgent({
      name: 'hotplug',
      connectors: [HDMI(), BARE_HDMI_UNPLUGGED],
      timeline: [
        {
          atMs: PLUG_MS,
          connector: 51,
          set: {
            connection: 'connected',
            crtc: 62,
            mode: { width: 1920, height: 1080, refresh: 60 },
          },
          uevent: { hotplug: true, connector: true },
        },
        {
          atMs: UNPLUG_MS,
          connector: 51,
          set: { connection: 'disconnected', crtc: 0, mode: null },
          uevent: { hotplug: true, connector: true },
        },
      ],
    });
    const incidents: string[] = [];
    agent.on('output-incident', (i) => incidents.push(i.error.code));
    const watchStart = Date.now();
    void agent.outputs; // opens the monitor: the scripted timeline starts now
    const session = await agent.openSession(await clip(32));
    const data = await clip(32);
    const decrypt = () => session.decryptFragment(data);
    expect(Date.now() - watchStart).toBeLessThan(PLUG_MS); // still before the plug

    const refused = await playUntil(decrypt, (o) => o !== 'played');
    expect(refused.outcome).toBe('OUTPUT_CONNECTOR_ADDED');
    expect(refused.at - (watchStart + PLUG_MS)).toBeLessThan(500);
    expect(session.keyStatuses().get(hex(kidOf(32)))).toBe('output-restricted');
    expect(incidents).toContain('OUTPUT_CONNECTOR_ADDED');

    const resumed = await playUntil(decrypt, (o) => o === 'played');
    expect(resumed.at).toBeGreaterThanOrEqual(watchStart + UNPLUG_MS);
    expect(session.keyStatuses().get(hex(kidOf(32)))).toBe('usable');
  });

  it('refuses with 6031 while the HDCP link is lost, and plays again when it recovers', async () => {
    const agent = await outputAgent({
      name: 'flaky-link',
      connectors: [HDMI()],
      timeline: [
        {
          atMs: 1200,
          connector: 42,
          set: { contentProtection: 'desired' },
          uevent: { property: 'Content Protection' },
        },
        {
          atMs: 1700,
          connector: 42,
          set: { contentProtection: 'enabled' },
          uevent: { property: 'Content Protection' },
        },
      ],
    });
    void agent.outputs;
    const session = await agent.openSession(await clip(33));
    const data = await clip(33);
    const decrypt = () => session.decryptFragment(data);
    await expect(decrypt()).resolves.toBeDefined();
    const lost = await playUntil(decrypt, (o) => o !== 'played');
    expect(lost.outcome).toBe('OUTPUT_LINK_LOST');
    expect(session.keyStatuses().get(hex(kidOf(33)))).toBe('output-restricted');
    const back = await playUntil(decrypt, (o) => o === 'played');
    expect(back.outcome).toBe('played');
  });

  it('best effort plays on a connector with no Content Protection property; restricted refuses (6037)', async () => {
    const vc4 = {
      name: 'vc4',
      connectors: [
        {
          id: 32,
          type: 'HDMI-A',
          index: 1,
          connection: 'connected',
          crtc: 90,
          mode: { width: 1920, height: 1080, refresh: 60 },
        },
      ],
    };
    const agent = await outputAgent(vc4);
    const best = await agent.openSession(await clip(34));
    await expect(best.decryptFragment(await clip(34))).resolves.toBeDefined();
    const strict = await agent.openSession(await clip(35));
    const err = await strict.decryptFragment(await clip(35)).catch((e: unknown) => e);
    expect(codeOf(err)).toBe('OUTPUT_CANNOT_ENGAGE');
    expect(strict.keyStatuses().get(hex(kidOf(35)))).toBe('output-restricted');
  });

  it('refuses a revoked sink (6033), and HDCP it cannot request without DRM master (6037)', async () => {
    const revoked = await outputAgent({
      name: 'revoked-tv',
      connectors: [HDMI({ hdcp: { authMs: 30, result: 'revoked' } })],
    });
    const s1 = await revoked.openSession(await clip(36));
    expect(codeOf(await s1.decryptFragment(await clip(36)).catch((e: unknown) => e))).toBe(
      'OUTPUT_SINK_REVOKED',
    );
    const noMaster = await outputAgent({ name: 'no-master', master: false, connectors: [HDMI()] });
    const s2 = await noMaster.openSession(await clip(37));
    expect(codeOf(await s2.decryptFragment(await clip(37)).catch((e: unknown) => e))).toBe(
      'OUTPUT_CANNOT_ENGAGE',
    );
  });
});
