import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from '../../agent/agent.js';
import type { AgentConfig } from '../../agent/config.js';
import { httpTransport, type ProtocolTransport } from '../../agent/protocol-transport.js';
import { fixedSource } from '../../crypto/hardware-identity.js';
import type { TimeSource } from '../../crypto/secure-clock.js';
import { isKeywardenError, kwError } from '../../errors/index.js';
import { loadHeadend } from '../headend-access.js';
import { outputFlow } from './demo-output.js';
import { packageFile } from '../../media/package/packager.js';
import { splitSegments } from '../../media/segments.js';
import { compareSamples, digestSamples, digestSamplesOf } from '../../media/sample-digest.js';

/** Prints one demo line; returns whether the check held. */
export type DemoLine = (ok: boolean, text: string) => boolean;

const HOUR = 3_600_000;

/**
 * The demo's world clock: real time plus a fast-forward, shared by the head-end and the
 * device, so a 24-hour rental can run out in a second. The device's monotonic clock moves
 * with it (a real device would have to wait the day).
 */
class DemoClock {
  private skipMs = 0;
  private readonly bootMs = Date.now();
  readonly now = (): number => Date.now() + this.skipMs;
  fastForward(ms: number): void {
    this.skipMs += ms;
  }
  device(): TimeSource {
    return {
      wallMs: this.now,
      monotonicMs: () => this.now() - this.bootMs,
      bootId: () => 'demo-boot',
    };
  }
}

/** A network the demo can unplug. */
class DemoNetwork implements ProtocolTransport {
  up = true;
  private readonly http = httpTransport();
  post(url: string, body: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    if (!this.up)
      return Promise.reject(kwError('TRANSPORT_FAILED', `POST ${url} failed: network unplugged`));
    return this.http.post(url, body, signal);
  }
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

const codeOf = (err: unknown): string =>
  isKeywardenError(err) ? `error ${err.number} ${err.code}` : String(err);

/**
 * The whole system on loopback (issue 4's `npm start`): a head-end, an agent with its own
 * state directory, content packaged from the clear clip, then individualization, license
 * acquisition, decryption verified sample for sample, a rental that runs out under an
 * accelerated clock, offline playback of a stored license, a secure release, and a
 * revocation that the license server enforces.
 */
export async function agentFlow(clip: string, work: string, line: DemoLine): Promise<number> {
  // The head-end is optional on a device install (`--omit=optional`): then this part is skipped.
  const mod = await loadHeadend().catch(() => undefined);
  if (!mod) {
    process.stdout.write('  skip the head-end flow (its optional packages are not installed)\n');
    return 0;
  }
  const clock = new DemoClock();
  const headend = await mod.Headend.open({
    dataDir: path.join(work, 'headend'),
    env: {},
    clock: clock.now,
  });
  const server = await mod.startHeadendServer(headend, { port: 0, host: '127.0.0.1' });
  const fleet = await headend.startFleet({ mqttPort: 0, prefix: 'demo', pollMs: 100 });
  const licenseUrl = `${server.url}/v1/license`;
  let failed = 0;
  const check = (ok: boolean, text: string): void => {
    if (!line(ok, text)) failed++;
  };
  const network = new DemoNetwork();
  const rootFile = path.join(work, 'operator-root.der');
  await writeFile(rootFile, headend.rootCertificate);
  const identity = [
    fixedSource('machine-id', randomBytes(16).toString('hex')),
    fixedSource('board-serial', randomBytes(8).toString('hex')),
  ];
  const config: AgentConfig = {
    stateDir: path.join(work, 'device'),
    provisioningUrl: `${server.url}/v1/provision`,
    domainUrl: `${server.url}/v1/domain/join`,
    trustedRoot: await readFile(rootFile),
    identitySources: identity,
    transport: network,
    time: clock.device(),
    autoMaintenance: false,
    fleet: {
      url: fleet.mqttUrl,
      topicPrefix: 'demo',
      protocolVersion: 4, // the embedded broker speaks MQTT 3.1.1
      pullUrl: `${server.url}/v1/fleet/revocations`,
    },
    friendlyName: 'demo box',
  };
  let agent = await Agent.create(config);
  const narrate = (text: string): void => void process.stdout.write(`      · ${text}\n`);
  agent.on('individualized', (e) => narrate(`individualized: device ${e.deviceId}`));
  agent.on('license-acquired', (l) =>
    narrate(`license ${l.id} (${l.type}${l.persisted ? ', stored encrypted' : ''})`),
  );
  try {
    const admin = headend.admin;
    await admin.setPolicy('rental', {
      'license-duration': '0',
      'rental-duration': '30d',
      'playback-duration': '24h',
      'can-persist': 'true',
      'can-renew': 'false',
    });
    await admin.setPolicy('offline', { 'license-duration': '30d', 'can-persist': 'true' });
    const rentalKid = randomBytes(16);
    const rental = await admin.addContentKey({
      kid: rentalKid,
      contentId: 'demo-rental',
      policy: 'rental',
    });
    const offlineKid = randomBytes(16);
    const offline = await admin.addContentKey({
      kid: offlineKid,
      contentId: 'demo-offline',
      policy: 'offline',
    });
    const packaged = async (name: string, kid: Buffer, key: string, contentId: string) => {
      const out = path.join(work, `${name}.mp4`);
      await packageFile({
        input: clip,
        output: out,
        scheme: 'cbcs',
        key: { kid, key: Buffer.from(key, 'hex') },
        contentId,
        licenseUrl,
      });
      return readFile(out);
    };
    const rentalClip = await packaged('rental', rentalKid, rental.key ?? '', 'demo-rental');
    const offlineClip = await packaged('offline', offlineKid, offline.key ?? '', 'demo-offline');
    const clear = await digestSamples(clip);
    const same = (bytes: Uint8Array): boolean =>
      compareSamples(digestSamplesOf(bytes), clear).length === 0;
    check(
      true,
      `head-end on ${server.url}; a rental ("30 days after issue or 24 h after first play") and an offline title, packaged cbcs`,
    );

    // 1. First play: individualization, license from the pssh's URL, decryption.
    const session = await agent.openSession(rentalClip);
    const first = await session.decryptFragment(rentalClip);
    check(same(first), 'agent: individualized, got the rental, decrypted it sample for sample');
    const [info] = await agent.licenses.select(rentalKid);
    check(
      info?.playableUntilMs === (info?.firstPlayMs ?? 0) + 24 * HOUR,
      `first play recorded; playable until ${new Date(info?.playableUntilMs ?? 0).toISOString()} (trusted time)`,
    );

    // 2. The rental runs out under the accelerated clock.
    clock.fastForward(23 * HOUR);
    const later = await session.decryptFragment(rentalClip);
    clock.fastForward(2 * HOUR);
    try {
      await session.decryptFragment(rentalClip);
      check(false, 'the rental still played 25 h after first play');
    } catch (err) {
      check(
        same(later) && isKeywardenError(err, 'LICENSE_EXPIRED'),
        `clock +23 h: still plays; +25 h: refused (${codeOf(err)})`,
      );
    }

    // 3. Offline: a stored license plays after a restart with the network unplugged.
    await agent.licenses.acquire({
      contentId: 'demo-offline',
      persist: true,
      serverUrl: licenseUrl,
    });
    await agent.close();
    network.up = false;
    agent = await Agent.create(config);
    const offlineSession = await agent.openSession(offlineClip);
    check(
      same(await offlineSession.decryptFragment(offlineClip)),
      'restart with the network unplugged: the stored offline license still plays',
    );

    // 4. Secure release: pending while offline, confirmed once the network is back.
    const [stored] = await agent.licenses.select(offlineKid);
    const pending = await agent.licenses.remove(stored?.id ?? '');
    network.up = true;
    await agent.maintain();
    check(
      pending.pending && agent.licenses.pendingReleases().length === 0,
      'release while offline stays pending; the server confirms it once back online',
    );

    // 5. Fleet revocation mid-stream: the operator revokes the title's key over MQTT.
    const liveKid = randomBytes(16);
    const live = await admin.addContentKey({
      kid: liveKid,
      contentId: 'demo-live',
      policy: 'offline',
    });
    const liveFile = path.join(work, 'live.mp4');
    await packageFile({
      input: clip,
      output: liveFile,
      scheme: 'cenc',
      key: { kid: liveKid, key: Buffer.from(live.key ?? '', 'hex') },
      contentId: 'demo-live',
      licenseUrl,
      fragmentMs: 1000,
    });
    const { init, fragments } = splitSegments(await readFile(liveFile));
    const liveSession = await agent.openSession(init);
    let played = 0;
    let stoppedBy = '';
    let revokedAt = 0;
    for (const [i, fragment] of fragments.entries()) {
      if (i === 2) {
        await waitUntil(() => agent.fleet?.client.connected === true, 5000);
        revokedAt = Date.now();
        await headend.fleet.revoke('key', liveKid.toString('hex'), 'demo: key leaked');
        await waitUntil(
          () => liveSession.keyStatuses().get(liveKid.toString('hex')) === 'revoked',
          5000,
        );
      }
      try {
        await liveSession.decryptFragment(fragment);
        played++;
      } catch (err) {
        stoppedBy = codeOf(err);
        break;
      }
    }
    check(
      played === 2 && stoppedBy.includes('LICENSE_REVOKED'),
      `fleet revocation over MQTT stops playback mid-stream: fragments 1-2 played, fragment 3 refused (${stoppedBy}); ${Date.now() - revokedAt} ms from revoke to refusal`,
    );

    // 6. Output protection on a second box whose outputs the scripted KMS backend plays.
    const boxConfig = Object.fromEntries(
      Object.entries(config).filter(([k]) => k !== 'stateDir' && k !== 'fleet'),
    ) as Omit<AgentConfig, 'stateDir' | 'fleet'>;
    await outputFlow({ admin, licenseUrl, config: boxConfig, clip, work, check });

    // 7. Revocation: the operator revokes the box; the license server refuses it.
    const deviceId = agent.status().deviceId ?? '';
    await admin.revokeDevice(deviceId, 'demo: box reported stolen');
    try {
      await agent.licenses.acquire({ keyIds: [rentalKid], serverUrl: licenseUrl });
      check(false, 'a revoked device still got a license');
    } catch (err) {
      check(
        isKeywardenError(err, 'DEVICE_REVOKED'),
        `operator revokes the box: the next license request is refused (${codeOf(err)})`,
      );
    }
  } finally {
    await agent.close();
    await fleet.close();
    await server.close();
    await headend.close();
  }
  return failed;
}
