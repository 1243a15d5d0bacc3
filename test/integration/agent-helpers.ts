/**
 * Agents against a real head-end on loopback: a fake clock shared by both sides (so a
 * rental can run out in a test), made-up hardware identities, packaged demo clips, and a
 * transport switch to take "the network" down.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import type { AgentConfig } from '../../src/agent/config.js';
import { httpTransport, type ProtocolTransport } from '../../src/agent/protocol-transport.js';
import { fixedSource, type IdentitySource } from '../../src/crypto/hardware-identity.js';
import type { TimeSource } from '../../src/crypto/secure-clock.js';
import { kwError } from '../../src/errors/index.js';
import { packageFile } from '../../src/media/package/packager.js';
import type { CencScheme } from '../../src/media/sample-crypto.js';
import { compareSamples, digestSamplesOf } from '../../src/media/sample-digest.js';

export const FIXTURE = path.resolve(
  import.meta.dirname,
  '..',
  'fixtures',
  'media',
  'demo-h264-aac.mp4',
);

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

/**
 * One timeline for the head-end and the devices: `trueMs` is real time in the test's world
 * (the head-end's clock); a device's wall clock may be set off it; the monotonic clock and
 * boot id follow the device's boots.
 */
export class FakeTime {
  trueMs = Date.now();
  advance(ms: number): void {
    this.trueMs += ms;
  }
  /** The head-end's clock. */
  readonly server = (): number => this.trueMs;
  /** A device's clocks; its user may set the wall clock off, and it may reboot. */
  device(): DeviceTime {
    const state = { wallOffsetMs: 0, bootId: 'boot-1', bootStartMs: this.trueMs };
    return {
      state,
      wallMs: () => this.trueMs + state.wallOffsetMs,
      monotonicMs: () => this.trueMs - state.bootStartMs,
      bootId: () => state.bootId,
      reboot: () => {
        state.bootId = `boot-${Math.random().toString(36).slice(2)}`;
        state.bootStartMs = this.trueMs;
      },
    };
  }
}

/** A device's fake clocks. */
export interface DeviceTime extends TimeSource {
  readonly state: { wallOffsetMs: number; bootId: string; bootStartMs: number };
  reboot(): void;
}

/** A transport that can be switched off, like a network cable. */
export class Cable implements ProtocolTransport {
  connected = true;
  posts = 0;
  private readonly inner = httpTransport({ timeoutMs: 5000 });
  async post(url: string, body: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    this.posts++;
    if (!this.connected)
      throw kwError('TRANSPORT_FAILED', `POST ${url} failed: network unreachable (test)`, { url });
    return this.inner.post(url, body, signal);
  }
}

const made: string[] = [];

/** Removes the state dirs of every {@link Box} made so far (afterAll). */
export function removeBoxes(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A simulated set-top box: a state dir and a stable made-up hardware identity. */
export class Box {
  readonly identity: IdentitySource[];
  readonly cable = new Cable();
  constructor(
    readonly stateDir = mkdtempSync(path.join(os.tmpdir(), 'kw-agent-')),
    readonly time?: TimeSource,
  ) {
    made.push(stateDir);
    this.identity = [
      fixedSource('machine-id', randomBytes(16).toString('hex')),
      fixedSource('board-serial', randomBytes(8).toString('hex')),
      fixedSource('cpu-serial', randomBytes(8).toString('hex')),
    ];
  }

  /** Opens an agent on this box's state. */
  open(headendUrl: string, root: Uint8Array, extra: Partial<AgentConfig> = {}): Promise<Agent> {
    return Agent.create({
      stateDir: this.stateDir,
      provisioningUrl: `${headendUrl}/v1/provision`,
      domainUrl: `${headendUrl}/v1/domain/join`,
      trustedRoot: root,
      identitySources: this.identity,
      transport: this.cable,
      autoMaintenance: false,
      retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 20 },
      friendlyName: 'test box',
      ...(this.time && { time: this.time }),
      ...extra,
    });
  }
}

/** Packages the demo clip with one key; the pssh names `licenseUrl` and `contentId`. */
export async function packageClip(
  work: string,
  name: string,
  opts: {
    kid: Uint8Array;
    key: Uint8Array;
    licenseUrl: string;
    contentId: string;
    scheme?: CencScheme;
    rotationKeys?: { kid: Uint8Array; key: Uint8Array }[];
    rotateEvery?: number;
    fragmentMs?: number;
  },
): Promise<Buffer> {
  const output = path.join(work, `${name}.mp4`);
  await packageFile({
    input: FIXTURE,
    output,
    scheme: opts.scheme ?? 'cenc',
    key: { kid: opts.kid, key: opts.key },
    licenseUrl: opts.licenseUrl,
    contentId: opts.contentId,
    ...(opts.rotationKeys && { rotationKeys: opts.rotationKeys }),
    ...(opts.rotateEvery && { rotateEvery: opts.rotateEvery }),
    ...(opts.fragmentMs && { fragmentMs: opts.fragmentMs }),
  });
  return readFile(output);
}

/** Problems comparing decrypted bytes to the clear fixture, sample by sample (empty = equal). */
export async function differencesFromClear(clear: Uint8Array): Promise<string[]> {
  return compareSamples(digestSamplesOf(clear), digestSamplesOf(await readFile(FIXTURE)));
}

/** Deterministic 16-byte KIDs and keys for tests. */
export const kidOf = (n: number): Buffer =>
  Buffer.from(`${n.toString(16).padStart(2, '0')}`.repeat(16), 'hex');
export const keyOf = (n: number): Buffer => Buffer.alloc(16, (n * 29) & 0xff);
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Polls `cond` every 20 ms until it holds; resolves with the ms it took, throws after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}
