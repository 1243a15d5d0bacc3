/**
 * `keywarden headend` as an operator starts it: the serving command's fleet options. The
 * primary runs the embedded MQTT broker on --mqtt-port with the fleet publisher under
 * --fleet-prefix (a retained, signed revocation list appears there); --no-fleet runs none.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, removeDir } from './headend-helpers.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode !== null) continue;
    c.kill('SIGTERM');
    await new Promise((r) => c.once('exit', r));
  }
  for (const d of dirs.splice(0)) removeDir(d);
});

async function startHeadend(extra: string[]): Promise<{ url: string; stderr: () => string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kw-headend-serve-'));
  dirs.push(dir);
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.resolve('test/helpers/cli-entry.ts'),
      'headend',
      '--data',
      dir,
      '--port',
      String(port),
      '--workers',
      '1',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KEYWARDEN_MASTER_KEY: '' } },
  );
  children.push(child);
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 30_000;
  while (!err.includes('keywarden headend:') && Date.now() < deadline && child.exitCode === null)
    await new Promise((r) => setTimeout(r, 50));
  expect(err, err).toContain('keywarden headend:');
  return { url: `http://127.0.0.1:${port}`, stderr: () => err };
}

const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

describe('keywarden headend (serving) fleet options', () => {
  it('runs the embedded broker on --mqtt-port and publishes the list under --fleet-prefix', async () => {
    const mqttPort = await freePort();
    await startHeadend(['--mqtt-port', String(mqttPort), '--fleet-prefix', 'op1']);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    try {
      const got = new Promise<{ topic: string; retained: boolean; size: number }>((resolve) =>
        client.on('message', (topic, payload, packet) =>
          resolve({ topic, retained: packet.retain, size: payload.length }),
        ),
      );
      await client.subscribeAsync('op1/fleet/revocations', { qos: 1 });
      const msg = await got;
      expect(msg.topic).toBe('op1/fleet/revocations');
      expect(msg.retained).toBe(true);
      expect(msg.size).toBeGreaterThan(64); // a signed envelope with its certificate chain
    } finally {
      await client.endAsync(true);
    }
  });

  it('runs no broker with --no-fleet', async () => {
    const mqttPort = await freePort();
    await startHeadend(['--mqtt-port', String(mqttPort), '--no-fleet']);
    expect(await listening(mqttPort)).toBe(false);
  });

  it('refuses a bad --mqtt-port with a usage error', async () => {
    const { runCli } = await import('../helpers/media/cli-run.js');
    const run = await runCli(['headend', '--data', '/nonexistent', '--mqtt-port', '70000']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('7200');
  });
});
