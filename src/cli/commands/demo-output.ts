import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from '../../agent/agent.js';
import type { AgentConfig } from '../../agent/config.js';
import { isKeywardenError } from '../../errors/index.js';
import { packageFile } from '../../media/package/packager.js';
import { splitSegments } from '../../media/segments.js';
import { validateKmsScenario } from '../../output/scenario.js';

/** When the scripted TV's second HDMI port gets a display without HDCP, and loses it. */
const PLUG_MS = 1500;
const UNPLUG_MS = 2600;

/**
 * The box's outputs in the demo: the scripted KMS backend (docs/kms.md) plays a set-top box
 * with an HDCP-capable TV on HDMI-A-1 and a second HDMI port whose driver offers no HDCP;
 * a display is plugged into it mid-stream and unplugged a second later.
 */
const SCENARIO = {
  name: 'demo-living-room',
  master: true,
  connectors: [
    {
      id: 42,
      type: 'HDMI-A',
      index: 1,
      connection: 'connected',
      crtc: 61,
      mode: { width: 1920, height: 1080, refresh: 60 },
      contentProtection: 'undesired',
      hdcpContentType: 'type0',
      hdcp: { authMs: 40, result: 'enabled' },
      sink: 'ok',
    },
    { id: 43, type: 'HDMI-A', index: 2, connection: 'disconnected' },
  ],
  timeline: [
    {
      atMs: PLUG_MS,
      connector: 43,
      set: { connection: 'connected', crtc: 62, mode: { width: 1280, height: 720, refresh: 60 } },
      uevent: { hotplug: true, connector: true },
    },
    {
      atMs: UNPLUG_MS,
      connector: 43,
      set: { connection: 'disconnected', crtc: 0, mode: null },
      uevent: { hotplug: true, connector: true },
    },
  ],
};

/** The head-end admin calls the step makes (the head-end loads lazily: headend-access.ts). */
export interface OutputDemoAdmin {
  setPolicy(name: string, fields: Record<string, string>): Promise<unknown>;
  addContentKey(input: {
    kid: Uint8Array;
    contentId: string;
    policy: string;
  }): Promise<{ key?: string }>;
}

/** What the output step needs from the demo. */
export interface OutputDemoContext {
  readonly admin: OutputDemoAdmin;
  readonly licenseUrl: string;
  /** The second box's configuration, without its state directory and outputs. */
  readonly config: Omit<AgentConfig, 'stateDir' | 'fleet'>;
  readonly clip: string;
  readonly work: string;
  check(ok: boolean, text: string): void;
}

/**
 * A title that requires HDCP (uncompressed digital video OPL 300) plays on a second box
 * once HDCP is up; plugging an unprotected display into the other HDMI port stops decryption
 * (6035), unplugging it resumes playback.
 */
export async function outputFlow(ctx: OutputDemoContext): Promise<void> {
  await ctx.admin.setPolicy('hdcp-required', {
    'license-duration': '30d',
    'opl-uncompressed-video': '300',
  });
  const kid = randomBytes(16);
  const added = await ctx.admin.addContentKey({
    kid,
    contentId: 'demo-hd',
    policy: 'hdcp-required',
  });
  const file = path.join(ctx.work, 'hd.mp4');
  await packageFile({
    input: ctx.clip,
    output: file,
    scheme: 'cenc',
    key: { kid, key: Buffer.from(added.key ?? '', 'hex') },
    contentId: 'demo-hd',
    licenseUrl: ctx.licenseUrl,
    fragmentMs: 500,
  });
  const { init, fragments } = splitSegments(await readFile(file));
  const agent = await Agent.create({
    ...ctx.config,
    stateDir: path.join(ctx.work, 'device-2'),
    friendlyName: 'demo box 2',
    output: { backend: 'scripted', scenario: validateKmsScenario(SCENARIO), pollMs: 0 },
  });
  try {
    const watchStart = Date.now();
    void agent.outputs; // the scripted timeline starts now
    const session = await agent.openSession(init);
    const kidHex = kid.toString('hex');
    let i = 0;
    let before = 0;
    let stopped: { code: string; at: number; fragment: number } | undefined;
    let resumed: number | undefined;
    const hdcp = (): string => {
      const s = agent.outputs.state;
      return s.known ? (s.connectors.find((c) => c.id === 42)?.contentProtection ?? '?') : '?';
    };
    // Play the fragments in a loop (a player at its own pace) until the display has come and gone.
    while (Date.now() - watchStart < UNPLUG_MS + 3000 && resumed === undefined) {
      try {
        await session.decryptFragment(fragments[i % fragments.length]!);
        if (stopped) resumed = Date.now();
        else before++;
      } catch (err) {
        if (!stopped)
          stopped = {
            code: isKeywardenError(err) ? `error ${err.number} ${err.code}` : String(err),
            at: Date.now(),
            fragment: i,
          };
      }
      i++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const latency = stopped ? stopped.at - (watchStart + PLUG_MS) : NaN;
    ctx.check(
      before > 0 && hdcp() === 'enabled',
      `second box, HDCP-required title: HDCP engaged on HDMI-A-1 before the first key was used; ${before} fragments played`,
    );
    ctx.check(
      stopped !== undefined &&
        stopped.code.includes('OUTPUT_CONNECTOR_ADDED') &&
        latency < 500 &&
        session.keyStatuses().get(kidHex) !== undefined,
      `a display without HDCP plugged into HDMI-A-2 mid-stream stops decryption (${stopped?.code ?? 'it did not'}) ${Number.isNaN(latency) ? '' : `${latency} ms after the plug`}`,
    );
    ctx.check(
      resumed !== undefined,
      resumed !== undefined
        ? `unplugged again: playback resumes ${resumed - (watchStart + UNPLUG_MS)} ms after the unplug`
        : 'playback did not resume after the unplug',
    );
  } finally {
    await agent.close();
  }
}
