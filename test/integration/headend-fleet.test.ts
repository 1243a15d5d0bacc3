/**
 * Issue 5, head-end side: the embedded MQTT broker and the fleet publisher on a running
 * head-end; `keywarden fleet revoke|command|status` from the CLI on the same data dir; the
 * HTTP pull fallback; the license server refusing revoked keys (6053).
 */
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../src/protocol/codec.js';
import { MessageType, signMessage, verifyMessage } from '../../src/protocol/envelope.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import type { RunningFleet } from '../../src/headend/index.js';
import { runCli } from '../helpers/media/cli-run.js';
import {
  licenseResponse,
  post,
  removeDir,
  startTestHeadend,
  TestDevice,
} from './headend-helpers.js';
import type { TestHeadend } from './headend-helpers.js';

const v1 = keywarden.v1;
const KID = Buffer.alloc(16, 0x5a);
const PREFIX = 'kwtest';

/** Collects messages per topic. */
class Inbox {
  readonly got: { topic: string; payload: Buffer; retain: boolean }[] = [];
  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) =>
      this.got.push({ topic, payload, retain: packet.retain }),
    );
  }
  async waitFor(
    pred: (m: { topic: string; payload: Buffer; retain: boolean }) => boolean,
    timeoutMs = 5000,
  ): Promise<{ topic: string; payload: Buffer; retain: boolean }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.got.find(pred);
      if (hit) return hit;
      if (Date.now() > end) throw new Error('timed out waiting for an MQTT message');
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

describe('head-end fleet over MQTT', () => {
  let he: TestHeadend;
  let fleet: RunningFleet;
  const clients: MqttClient[] = [];
  let device: TestDevice;

  const listOf = (bytes: Uint8Array): keywarden.v1.RevocationList => {
    const verified = verifyMessage(bytes, MessageType.FLEET_REVOCATION_LIST, {
      trustedRoot: he.root,
    });
    return decodeMessage(v1.RevocationList, verified.payload, 'RevocationList');
  };
  const connect = async (): Promise<MqttClient> => {
    const c = await connectAsync(fleet.mqttUrl, { protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    he = await startTestHeadend();
    fleet = await he.headend.startFleet({ mqttPort: 0, prefix: PREFIX, pollMs: 100 });
    await he.headend.admin.addContentKey({ kid: KID, key: Buffer.alloc(16, 1) });
    device = new TestDevice(he.url, he.root);
    await device.provision();
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await fleet?.close();
    await he?.stop();
    if (he) removeDir(he.dir);
  });

  it('publishes a newer signed list, retained, after `fleet revoke`; HTTP serves the same; licenses are refused with 6053', async () => {
    // A license for the key works before the revocation.
    const before = await post(`${he.url}/v1/license`, device.licenseRequest({ keyIds: [KID] }));
    expect(licenseResponse(before.body, he.root).license).toBeTruthy();

    const sub = await connect();
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(`${PREFIX}/fleet/revocations`, { qos: 1 });
    const first = await inbox.waitFor((m) => m.retain);
    const firstNumber = Number(listOf(first.payload).number);

    const run = await runCli([
      'fleet',
      '--data',
      he.dir,
      'revoke',
      '--kid',
      KID.toString('hex'),
      '--reason',
      'key leaked',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { listNumber: number; added: boolean };
    expect(out.added).toBe(true);
    expect(out.listNumber).toBeGreaterThan(firstNumber);

    const next = await inbox.waitFor((m) => Number(listOf(m.payload).number) === out.listNumber);
    const list = listOf(next.payload);
    expect(list.entries.map((e) => [e.kind, e.value, e.reason])).toEqual([
      [v1.RevocationEntry.Kind.KEY, KID.toString('hex'), 'key leaked'],
    ]);
    expect(Number(list.nextUpdateMs)).toBeGreaterThan(Number(list.issuedAtMs));

    // A late subscriber gets it retained.
    const late = await connect();
    const lateInbox = new Inbox(late);
    await late.subscribeAsync(`${PREFIX}/fleet/revocations`, { qos: 1 });
    const retained = await lateInbox.waitFor(() => true);
    expect(retained.retain).toBe(true);
    expect(Number(listOf(retained.payload).number)).toBe(out.listNumber);

    // The pull fallback serves the same bytes.
    const res = await fetch(`${he.url}/v1/fleet/revocations`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-protobuf');
    expect(Buffer.from(await res.arrayBuffer()).equals(next.payload)).toBe(true);

    // The license server refuses the revoked KID with a signed 6053.
    const after = await post(`${he.url}/v1/license`, device.licenseRequest({ keyIds: [KID] }));
    expect(after.status).toBe(200);
    expect(licenseResponse(after.body, he.root).error).toMatchObject({ code: 6053 });
  });

  it('publishes queued commands, records signed acks and statuses, and reports them in `fleet status`', async () => {
    const dev = await connect();
    const inbox = new Inbox(dev);
    await dev.subscribeAsync(`${PREFIX}/devices/${device.deviceId}/cmd`, { qos: 1 });

    const queued = await runCli([
      'fleet',
      '--data',
      he.dir,
      'command',
      device.deviceId,
      'wipe',
      '--json',
    ]);
    expect(queued.code, queued.stderr).toBe(0);
    const { id } = JSON.parse(queued.stdout) as { id: string };

    const msg = await inbox.waitFor(() => true);
    const verified = verifyMessage(msg.payload, MessageType.FLEET_COMMAND, {
      trustedRoot: he.root,
    });
    const cmd = decodeMessage(v1.FleetCommand, verified.payload, 'FleetCommand');
    expect(cmd).toMatchObject({
      id,
      deviceId: device.deviceId,
      action: v1.FleetCommand.Action.WIPE,
    });
    expect(Number(cmd.expiresAtMs)).toBeGreaterThan(Date.now());

    let status = JSON.parse(
      (await runCli(['fleet', '--data', he.dir, 'status', '--json'])).stdout,
    ) as {
      listNumber: number;
      devices: { deviceId: string; online: boolean; pending: unknown[] }[];
    };
    expect(status.devices.find((d) => d.deviceId === device.deviceId)?.pending).toHaveLength(1);

    const signer = { privateKey: device.privateKey, chain: device.chain };
    const st = signMessage(
      MessageType.FLEET_STATUS,
      encodeMessage(
        v1.DeviceStatus,
        v1.DeviceStatus.create({
          deviceId: device.deviceId,
          online: true,
          agentVersion: '1.0.0',
          listNumber: status.listNumber,
          reportedAtMs: Date.now(),
        }),
      ),
      signer,
    );
    await dev.publishAsync(`${PREFIX}/devices/${device.deviceId}/status`, Buffer.from(st), {
      qos: 1,
      retain: true,
    });
    const ack = signMessage(
      MessageType.FLEET_ACK,
      encodeMessage(
        v1.CommandAck,
        v1.CommandAck.create({
          commandId: id,
          deviceId: device.deviceId,
          ok: true,
          message: 'wiped',
          listNumber: status.listNumber,
        }),
      ),
      signer,
    );
    await dev.publishAsync(`${PREFIX}/devices/${device.deviceId}/ack`, Buffer.from(ack), {
      qos: 1,
    });
    // A forged status (signed by a key the head-end never certified) is ignored.
    const stranger = new TestDevice(he.url, he.root);
    const forged = signMessage(
      MessageType.FLEET_STATUS,
      encodeMessage(v1.DeviceStatus, v1.DeviceStatus.create({ deviceId: device.deviceId })),
      { privateKey: stranger.privateKey, chain: device.chain },
    );
    await dev.publishAsync(`${PREFIX}/devices/${device.deviceId}/status`, Buffer.from(forged), {
      qos: 1,
    });

    const end = Date.now() + 5000;
    for (;;) {
      const run = await runCli(['fleet', '--data', he.dir, 'status', '--json']);
      status = JSON.parse(run.stdout) as typeof status;
      const d = status.devices.find((x) => x.deviceId === device.deviceId);
      if (d?.online && d.pending.length === 0) break;
      if (Date.now() > end) throw new Error(`status not recorded: ${run.stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const human = await runCli(['fleet', '--data', he.dir, 'status']);
    expect(human.stdout).toContain(`${device.deviceId}  online`);
    expect(human.stdout).toContain('pending: none');

    // The last-will marker sets the device offline.
    await dev.publishAsync(`${PREFIX}/devices/${device.deviceId}/status`, 'offline', { qos: 1 });
    await expect
      .poll(async () => (await runCli(['fleet', '--data', he.dir, 'status'])).stdout, {
        timeout: 5000,
      })
      .toContain(`${device.deviceId}  offline`);
  });

  it('rejects bad CLI usage with coded errors', async () => {
    const none = await runCli(['fleet', '--data', he.dir, 'revoke']);
    expect(none.code).not.toBe(0);
    const bad = await runCli(['fleet', '--data', he.dir, 'revoke', '--kid', 'xyz']);
    expect(bad.code).not.toBe(0);
    const arg = await runCli(['fleet', '--data', he.dir, 'command', device.deviceId, 'revoke-key']);
    expect(arg.code).not.toBe(0);
  });
});

describe('head-end cluster with the fleet side in the primary', () => {
  it('runs the broker and publisher in the primary; workers serve the list over HTTP', async () => {
    const { mkdtempSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { runHeadendCluster } = await import('../../src/headend/index.js');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-fleet-cluster-'));
    const cluster = await runHeadendCluster({
      dataDir: dir,
      workers: 1,
      server: { port: 0 },
      fleet: { mqttPort: 0, prefix: PREFIX, pollMs: 100 },
      log: () => undefined,
    });
    let client: MqttClient | undefined;
    try {
      expect(cluster.mqttUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
      client = await connectAsync(cluster.mqttUrl ?? '', {
        protocolVersion: 4,
        reconnectPeriod: 0,
      });
      const inbox = new Inbox(client);
      await client.subscribeAsync(`${PREFIX}/fleet/revocations`, { qos: 1 });
      const revoked = await runCli([
        'fleet',
        '--data',
        dir,
        'revoke',
        '--content',
        'film-9',
        '--json',
      ]);
      expect(revoked.code, revoked.stderr).toBe(0);
      const { listNumber } = JSON.parse(revoked.stdout) as { listNumber: number };
      const root = new Uint8Array(await (await fetch(`${cluster.url}/v1/pki/root`)).arrayBuffer());
      const numberOf = (b: Uint8Array): number =>
        Number(
          decodeMessage(
            v1.RevocationList,
            verifyMessage(b, MessageType.FLEET_REVOCATION_LIST, { trustedRoot: root }).payload,
            'RevocationList',
          ).number,
        );
      const got = await inbox.waitFor((m) => numberOf(m.payload) === listNumber);
      const res = await fetch(`${cluster.url}/v1/fleet/revocations`);
      expect(Buffer.from(await res.arrayBuffer()).equals(got.payload)).toBe(true);
    } finally {
      await client?.endAsync(true);
      await cluster.close();
      removeDir(dir);
    }
  });
});
