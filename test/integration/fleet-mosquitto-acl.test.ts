/**
 * The shipped Mosquitto configuration (config/mosquitto): mTLS with device certificates as
 * identity, and per-device ACLs. Runs a real Mosquitto with that config (test paths, a free
 * port) and certificates from the real head-end operator PKI, and plain mqtt.js clients.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetTopics, revocationsTopic } from '../../src/fleet/index.js';
import { OperatorPki } from '../../src/headend/pki/operator-pki.js';
import { KeySealer } from '../../src/headend/sealing.js';
import { openSqliteStore } from '../../src/headend/store/open-store.js';
import type { HeadendRepository } from '../../src/headend/store/repository.js';
import {
  deriveMosquittoConfig,
  freePort,
  hasMosquitto,
  startMosquittoWithConfig,
  type TestBroker,
} from '../helpers/fleet-brokers.js';

const CONFIG_DIR = fileURLToPath(new URL('../../config/mosquitto/', import.meta.url));
const PREFIX = 'keywarden';
const A = 'dev-a-0001';
const B = 'dev-b-0002';
/** How long a message that must not arrive is waited for (after a positive control). */
const QUIET_MS = 400;

interface Creds {
  readonly cert: string;
  readonly key: string;
}

const pem = (der: Uint8Array): string => new X509Certificate(der).toString();

/** A device key pair and its certificate from the head-end's provisioning authority. */
async function deviceCreds(pki: OperatorPki, deviceId: string): Promise<Creds> {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const now = Date.now();
  const der = await pki.issueDeviceCertificate(
    publicKey.export({ type: 'spki', format: 'der' }),
    deviceId,
    new Date(now - 3600_000),
    new Date(now + 86400_000),
  );
  return { cert: pem(der), key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function openssl(cwd: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** Collects every message a client receives. */
function recorder(client: MqttClient): { topic: string; payload: string; retain: boolean }[] {
  const got: { topic: string; payload: string; retain: boolean }[] = [];
  client.on('message', (topic, payload, packet) =>
    got.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  return got;
}

/** Resolves once `pred` holds (polled), or fails after `timeoutMs`. */
async function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** QoS 1 publish; resolves with the PUBACK reason code (MQTT 5), 0 = success. */
function publishRc(
  client: MqttClient,
  topic: string,
  payload: string,
  retain = false,
): Promise<number> {
  return new Promise((resolve) => {
    client.publish(topic, payload, { qos: 1, retain }, (err, packet) => {
      const code =
        (packet as { reasonCode?: number } | undefined)?.reasonCode ??
        (err as { code?: number } | undefined)?.code;
      resolve(code ?? (err ? -1 : 0));
    });
  });
}

const run = hasMosquitto();

describe.skipIf(!run)('shipped Mosquitto config: mTLS and per-device ACLs', () => {
  let dir: string;
  let store: HeadendRepository;
  let broker: TestBroker & { log(): string };
  let brokerCa: string;
  let devA: Creds;
  let devB: Creds;
  let publisher: Creds;
  let foreignA: Creds;
  const clients: MqttClient[] = [];

  const connect = async (
    clientId: string,
    creds: Creds | undefined,
    extra: IClientOptions = {},
  ): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 3000,
      ca: brokerCa,
      servername: 'localhost',
      ...(creds && { cert: creds.cert, key: creds.key }),
      ...extra,
    });
    clients.push(c);
    return c;
  };

  /** Connect must fail; returns the error message. */
  const refused = async (clientId: string, creds: Creds | undefined): Promise<string> => {
    try {
      const c = await connect(clientId, creds);
      await c.endAsync(true);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error(`${clientId} was able to connect`);
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kw-mosq-acl-'));
    // The head-end's operator PKI: root → provisioning authority → device certificates;
    // root → fleet publisher.
    store = await openSqliteStore(dir);
    const pki = await OperatorPki.open(store, new KeySealer(Buffer.alloc(32, 7)), Date.now());
    devA = await deviceCreds(pki, A);
    devB = await deviceCreds(pki, B);
    const fleet = pki.identity('fleet');
    publisher = {
      cert: pem(fleet.certDer),
      key: fleet.key.keyObject.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
    const caChain = pem(pki.rootDer) + pem(pki.identity('provisioning').certDer);

    // The broker's server certificate, from a separate test CA (what devices get as tls.ca).
    // The same CA also issues a client certificate with A's id that must be refused.
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl(
      dir,
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'bca.key',
      '-out',
      'bca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=keywarden test broker CA',
    );
    openssl(
      dir,
      'req',
      ...ec,
      '-keyout',
      'broker.key',
      '-out',
      'broker.csr',
      '-subj',
      '/CN=localhost',
    );
    await writeFile(
      path.join(dir, 'ext.cnf'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n',
    );
    const sign = (csr: string, out: string): void =>
      openssl(
        dir,
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        'bca.crt',
        '-CAkey',
        'bca.key',
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        'ext.cnf',
        '-out',
        out,
      );
    sign('broker.csr', 'broker.crt');
    openssl(
      dir,
      'req',
      ...ec,
      '-keyout',
      'foreign.key',
      '-out',
      'foreign.csr',
      '-subj',
      `/CN=${A}`,
    );
    sign('foreign.csr', 'foreign.crt');
    brokerCa = await readFile(path.join(dir, 'bca.crt'), 'utf8');
    foreignA = {
      cert: await readFile(path.join(dir, 'foreign.crt'), 'utf8'),
      key: await readFile(path.join(dir, 'foreign.key'), 'utf8'),
    };
    await writeFile(path.join(dir, 'ca-chain.pem'), caChain);

    // The shipped config and ACL file, with test paths and a free port.
    const port = await freePort();
    const acl = path.join(dir, 'acl.conf');
    await writeFile(acl, await readFile(path.join(CONFIG_DIR, 'acl.conf')));
    const conf = deriveMosquittoConfig(
      await readFile(path.join(CONFIG_DIR, 'mosquitto.conf'), 'utf8'),
      port,
      {
        cafile: path.join(dir, 'ca-chain.pem'),
        certfile: path.join(dir, 'broker.crt'),
        keyfile: path.join(dir, 'broker.key'),
        acl_file: acl,
      },
    );
    const confPath = path.join(dir, 'mosquitto.conf');
    await writeFile(confPath, conf);
    broker = await startMosquittoWithConfig(confPath, port);
  }, 15_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await broker?.stop();
    await store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the shipped config keeps mTLS, identity as username and the ACL file', async () => {
    const text = await readFile(path.join(CONFIG_DIR, 'mosquitto.conf'), 'utf8');
    for (const line of [
      'require_certificate true',
      'use_identity_as_username true',
      'use_username_as_clientid true',
      'allow_anonymous false',
    ]) {
      expect(text.split('\n')).toContain(line);
    }
    expect(text).not.toMatch(/^\s*(password_file|listener 1883)/m);
  });

  it('a client without a certificate, or with one from another CA, cannot connect', async () => {
    await refused('no-cert', undefined);
    // Same CN as device A, but not issued by the operator's provisioning chain.
    await refused(A, foreignA);
    // A sanity check that the positive path works with the same options.
    const ok = await connect(`${A}-probe`, devA);
    expect(ok.connected).toBe(true);
    await ok.endAsync();
  });

  it("device A gets its own commands but never B's", async () => {
    const a = await connect(A, devA);
    const b = await connect(B, devB);
    const pub = await connect('headend-pub-1', publisher);
    const gotA = recorder(a);
    const gotB = recorder(b);
    const tA = fleetTopics(PREFIX, A);
    const tB = fleetTopics(PREFIX, B);

    const own = await a.subscribeAsync(tA.command, { qos: 1 });
    expect(own[0]!.qos).toBe(1);
    // Explicitly B's topic, and wildcards covering every device. Mosquitto 2.0 grants such
    // subscriptions and applies the read ACL to each delivery, so what counts is what arrives.
    await a.subscribeAsync([tB.command, `${PREFIX}/devices/+/cmd`, '#'], { qos: 1 });
    await b.subscribeAsync(tB.command, { qos: 1 });

    expect(await publishRc(pub, tB.command, 'cmd-for-B')).toBe(0);
    expect(await publishRc(pub, tA.command, 'cmd-for-A')).toBe(0);
    await until(() => gotA.some((m) => m.payload === 'cmd-for-A'), "A's command");
    await until(() => gotB.some((m) => m.payload === 'cmd-for-B'), "B's command (control)");
    await sleep(QUIET_MS);

    // One copy per matching subscription (MQTT 5), all of them A's own command.
    expect(gotA.length).toBeGreaterThan(0);
    expect(new Set(gotA.map((m) => `${m.topic} ${m.payload}`))).toEqual(
      new Set([`${tA.command} cmd-for-A`]),
    );
    expect(gotB.map((m) => m.payload)).toEqual(['cmd-for-B']);
    await Promise.all([a.endAsync(), b.endAsync(), pub.endAsync()]);
  });

  it('device A cannot publish a revocation list, nor B’s status, ack or commands', async () => {
    // The config gives one connection per certificate (use_username_as_clientid), so the
    // clients of one certificate below are used one after the other.
    const b = await connect(B, devB);
    const pub = await connect('headend-pub-2', publisher);
    const gotB = recorder(b);
    const gotPub = recorder(pub);
    const tA = fleetTopics(PREFIX, A);
    const tB = fleetTopics(PREFIX, B);
    const revocations = revocationsTopic(PREFIX);

    await b.subscribeAsync([revocations, tB.command], { qos: 1 });
    const headendSubs = await pub.subscribeAsync(
      [`${PREFIX}/devices/+/status`, `${PREFIX}/devices/+/ack`],
      { qos: 1 },
    );
    expect(headendSubs.map((g) => g.qos)).toEqual([1, 1]);

    // Forgeries by A. QoS 1: the PUBACK means Mosquitto has handled (dropped) it.
    const a = await connect(A, devA);
    const forged = [
      await publishRc(a, revocations, 'forged-list', true),
      await publishRc(a, tB.status, 'forged-status', true),
      await publishRc(a, tB.ack, 'forged-ack'),
      await publishRc(a, tB.command, 'forged-cmd'),
    ];
    // Positive controls: A's own status and ack.
    expect(await publishRc(a, tA.status, 'A-status', true)).toBe(0);
    expect(await publishRc(a, tA.ack, 'A-ack')).toBe(0);
    await a.endAsync();
    // A again, now claiming the publisher's username: the certificate CN decides.
    const aAsPublisher = await connect(A, devA, { username: 'keywarden fleet publisher' });
    forged.push(await publishRc(aAsPublisher, revocations, 'forged-list-2', true));
    await aAsPublisher.endAsync();
    // MQTT 5: Mosquitto answers "not authorized" (0x87) and delivers nothing.
    expect(forged).toEqual([0x87, 0x87, 0x87, 0x87, 0x87]);

    // Positive control for the list, published after the forgeries were handled.
    expect(await publishRc(pub, revocations, 'real-list', true)).toBe(0);
    await until(() => gotPub.some((m) => m.payload === 'A-ack'), "A's ack (control)");
    await until(() => gotPub.some((m) => m.payload === 'A-status'), "A's status (control)");
    await until(() => gotB.some((m) => m.payload === 'real-list'), 'the real list (control)');
    await sleep(QUIET_MS);

    expect(gotB.map((m) => m.payload)).toEqual(['real-list']);
    expect(gotPub.map((m) => `${m.topic} ${m.payload}`).sort()).toEqual(
      [`${tA.ack} A-ack`, `${tA.status} A-status`].sort(),
    );
    await b.endAsync();
    await pub.endAsync();

    // What new subscribers get retained: the publisher's list (not A's forgery), and among
    // the statuses only A's own.
    const lateB = await connect(B, devB);
    const lateHeadend = await connect('headend-pub-late', publisher);
    const gotLateB = recorder(lateB);
    const gotLateHeadend = recorder(lateHeadend);
    await lateB.subscribeAsync(revocations, { qos: 1 });
    await lateHeadend.subscribeAsync(`${PREFIX}/devices/+/status`, { qos: 1 });
    await until(() => gotLateB.length > 0, 'the retained list');
    await until(() => gotLateHeadend.length > 0, "A's retained status");
    await sleep(QUIET_MS);
    expect(gotLateB).toEqual([{ topic: revocations, payload: 'real-list', retain: true }]);
    expect(gotLateHeadend).toEqual([{ topic: tA.status, payload: 'A-status', retain: true }]);
    await lateB.endAsync();
    await lateHeadend.endAsync();
  });

  it('the head-end publisher cannot read commands nor publish as a device', async () => {
    const pub = await connect('headend-pub-3', publisher);
    const got = recorder(pub);
    await pub.subscribeAsync([`${PREFIX}/devices/+/cmd`, `${PREFIX}/devices/+/status`], {
      qos: 1,
    });
    await until(() => got.length > 0, "A's retained status");
    expect(await publishRc(pub, fleetTopics(PREFIX, B).status, 'headend-as-B')).toBe(0x87);
    expect(await publishRc(pub, fleetTopics(PREFIX, B).command, 'cmd-to-B')).toBe(0);
    // Control: a status A is allowed to publish reaches the head-end.
    const a = await connect(A, devA);
    expect(await publishRc(a, fleetTopics(PREFIX, A).status, 'A-status-3', true)).toBe(0);
    await until(() => got.some((m) => m.payload === 'A-status-3'), "A's status (control)");
    await sleep(QUIET_MS);
    expect(got.map((m) => m.payload)).toEqual(['A-status', 'A-status-3']);
    await a.endAsync();
    await pub.endAsync();
  });

  it("device A cannot take over B's persistent session by using B's client id", async () => {
    const tB = fleetTopics(PREFIX, B);
    const session = { clean: false, properties: { sessionExpiryInterval: 300 } };
    // B subscribes in a persistent session and goes offline; a command is queued for it.
    const b = await connect(B, devB, session);
    await b.subscribeAsync(tB.command, { qos: 1 });
    await b.endAsync();
    const pub = await connect('headend-pub-4', publisher);
    expect(await publishRc(pub, tB.command, 'queued-for-B')).toBe(0);

    // A connects with B's client id and asks to resume the session.
    const a = mqtt.connect(broker.url, {
      protocolVersion: 5,
      clientId: B,
      reconnectPeriod: 0,
      connectTimeout: 3000,
      ca: brokerCa,
      servername: 'localhost',
      cert: devA.cert,
      key: devA.key,
      ...session,
    });
    clients.push(a);
    const gotA = recorder(a);
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      a.once('connect', resolve);
      a.once('error', reject);
    });
    // The broker replaced the client id by A's id: no session of B's.
    expect(connack.sessionPresent).toBe(false);
    expect(connack.properties?.assignedClientIdentifier ?? A).toBe(A);
    await sleep(QUIET_MS);
    expect(gotA).toEqual([]);
    await a.endAsync();

    // Control: B itself resumes its session and gets the queued command.
    const b2 = await connect(B, devB, session);
    const gotB = recorder(b2);
    await until(() => gotB.length > 0, "B's queued command");
    expect(gotB.map((m) => m.payload)).toEqual(['queued-for-B']);
    await b2.endAsync();
    await pub.endAsync();
  });
});

if (!run) {
  describe('shipped Mosquitto config: mTLS and per-device ACLs', () => {
    it.skip('SKIP: mosquitto is not installed', () => undefined);
  });
}
