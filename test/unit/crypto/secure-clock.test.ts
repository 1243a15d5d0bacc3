import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BOOT_ID_PATH,
  SecureClock,
  systemTimeSource,
  UPTIME_PATH,
  type ForwardJump,
  type TimeSource,
} from '../../../src/crypto/secure-clock.js';
import type { KeywardenError } from '../../../src/errors/index.js';

const coded = (code: string): Error => expect.objectContaining({ code }) as Error;
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** The server's clock at the first anchor. */
const SERVER = Date.UTC(2025, 2, 1, 12);

/** A device: its wall clock, its boot timeline and the real time (which it cannot read). */
class FakeDevice implements TimeSource {
  real = SERVER;
  wall = SERVER;
  mono = 42_000;
  boot = 'boot-1';
  private boots = 1;

  wallMs(): number {
    return this.wall;
  }
  monotonicMs(): number {
    return this.mono;
  }
  bootId(): string {
    return this.boot;
  }
  /** Real time passes while powered on: every clock moves. */
  run(ms: number): void {
    this.real += ms;
    this.wall += ms;
    this.mono += ms;
  }
  /** Powered off for `offMs`, then up for `upMs`. The RTC keeps the wall clock going. */
  reboot(offMs: number, upMs = MIN): void {
    this.real += offMs + upMs;
    this.wall += offMs + upMs;
    this.mono = upMs;
    this.boot = `boot-${++this.boots}`;
  }
}

let dir: string;
let file: string;
let key: Uint8Array;
let dev: FakeDevice;
const open = (source: TimeSource = dev, k = key): Promise<SecureClock> =>
  SecureClock.open({ file, key: k, source });

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kw-clock-'));
  file = path.join(dir, 'state', 'secure-clock.bin');
  key = randomBytes(32);
  dev = new FakeDevice();
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('SecureClock: never anchored', () => {
  it('is untrusted, refuses now() with CLOCK_UNTRUSTED, and writes nothing', async () => {
    const clock = await open();
    expect(() => clock.now()).toThrow(coded('CLOCK_UNTRUSTED'));
    expect(clock.nowOrUndefined()).toBeUndefined();
    const s = clock.status();
    expect(s.trusted).toBe(false);
    expect(s.lastAnchorMs).toBeUndefined();
    expect(s.driftMs).toBeUndefined();
    expect(s.loadError).toBeUndefined();
    await clock.checkpoint();
    expect(existsSync(file)).toBe(false);
  });

  it('refuses a key that is not 32 bytes and a server time that is not a timestamp', async () => {
    await expect(open(dev, randomBytes(16))).rejects.toThrow(coded('CONFIG_INVALID'));
    const clock = await open();
    await expect(clock.anchor(Number.NaN)).rejects.toThrow(coded('PROTOCOL_ERROR'));
    await expect(clock.anchor(-5)).rejects.toThrow(coded('PROTOCOL_ERROR'));
    expect(clock.status().trusted).toBe(false);
  });
});

describe('SecureClock: within one boot', () => {
  it('anchors to server time and advances with the monotonic clock', async () => {
    dev.wall = SERVER - 7 * MIN; // the box's wall clock is a little off: irrelevant
    const clock = await open();
    await clock.anchor(SERVER);
    expect(clock.now()).toBe(SERVER);
    dev.run(90_000);
    expect(clock.now()).toBe(SERVER + 90_000);
    const s = clock.status();
    expect(s).toMatchObject({ trusted: true, estimated: false, lastAnchorMs: SERVER });
    expect(s.driftMs).toBe(-7 * MIN);
    expect(s.floorMs).toBe(SERVER + 90_000);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('ignores a wall clock set back 30 days, and emits CLOCK_ROLLBACK once', async () => {
    const clock = await open();
    const rollbacks: KeywardenError[] = [];
    clock.on('rollback', (e) => rollbacks.push(e));
    await clock.anchor(SERVER);
    dev.run(HOUR);
    dev.wall -= 30 * DAY;
    expect(clock.now()).toBe(SERVER + HOUR);
    dev.run(MIN);
    expect(clock.now()).toBe(SERVER + HOUR + MIN);
    expect(rollbacks).toHaveLength(1);
    expect(rollbacks[0]).toMatchObject({ code: 'CLOCK_ROLLBACK', number: 6062 });
    expect(rollbacks[0]!.details.driftMs).toBe(-30 * DAY);
    expect(clock.status()).toMatchObject({ rollbackDetected: true, driftMs: -30 * DAY });
    // A fresh anchor clears the flag; the wall is still behind, so it is reported again.
    await clock.anchor(dev.real);
    expect(clock.status().rollbackDetected).toBe(true);
    expect(rollbacks).toHaveLength(2);
    dev.wall = dev.real; // NTP fixed it
    await clock.anchor(dev.real);
    expect(clock.status().rollbackDetected).toBe(false);
  });

  it('ignores a wall clock set forward, and emits forward-jump', async () => {
    const clock = await open();
    const jumps: ForwardJump[] = [];
    const rollbacks: KeywardenError[] = [];
    clock.on('forward-jump', (j) => jumps.push(j));
    clock.on('rollback', (e) => rollbacks.push(e));
    await clock.anchor(SERVER);
    dev.wall += 365 * DAY;
    dev.run(10_000);
    expect(clock.now()).toBe(SERVER + 10_000);
    expect(clock.now()).toBe(SERVER + 10_000);
    expect(jumps).toEqual([
      { wallMs: SERVER + 365 * DAY + 10_000, trustedMs: SERVER + 10_000, driftMs: 365 * DAY },
    ]);
    expect(rollbacks).toHaveLength(0);
    expect(clock.status().rollbackDetected).toBe(false);
  });

  it('does not report drift inside the tolerance', async () => {
    const clock = await SecureClock.open({ file, key, source: dev, toleranceMs: 5 * MIN });
    let events = 0;
    clock.on('rollback', () => events++);
    clock.on('forward-jump', () => events++);
    await clock.anchor(SERVER);
    dev.wall -= 4 * MIN;
    clock.now();
    dev.wall += 8 * MIN;
    clock.now();
    expect(events).toBe(0);
    dev.wall += 2 * MIN;
    clock.now();
    expect(events).toBe(1);
  });

  it('takes the server time as authoritative, but does not step back for latency', async () => {
    const clock = await open();
    await clock.anchor(SERVER);
    dev.run(MIN);
    await clock.anchor(SERVER + MIN - 1500); // an answer that spent 1.5 s in flight
    expect(clock.now()).toBe(SERVER + MIN);
    await clock.anchor(SERVER + MIN + 30_000); // the server is ahead: it wins
    expect(clock.now()).toBe(SERVER + MIN + 30_000);
    await clock.anchor(SERVER - DAY); // far behind: the server corrected its clock
    expect(clock.now()).toBe(SERVER - DAY);
    expect(clock.status().lastAnchorMs).toBe(SERVER - DAY);
  });

  it('resumes exactly after a process restart in the same boot', async () => {
    const first = await open();
    await first.anchor(SERVER);
    dev.run(5 * MIN);
    dev.wall += 3 * DAY; // the user fiddles with the wall clock between the two processes
    const second = await open();
    expect(second.now()).toBe(SERVER + 5 * MIN);
    expect(second.now()).toBe(first.now());
    expect(second.status()).toMatchObject({
      trusted: true,
      estimated: false,
      lastAnchorMs: SERVER,
    });
  });

  it('treats a same-boot timeline read slightly behind the mark as the same boot', async () => {
    const first = await open();
    await first.anchor(SERVER);
    dev.run(5 * MIN);
    await first.checkpoint();
    dev.mono -= 10; // the next process reads /proc/uptime 10 ms behind the writer's estimate
    const second = await open();
    expect(second.status()).toMatchObject({ trusted: true, estimated: false });
    expect(second.now()).toBe(SERVER + 5 * MIN);
    dev.run(MIN);
    expect(second.now()).toBe(SERVER + 6 * MIN - 10);
  });

  it('persists writes in call order', async () => {
    const clock = await open();
    const a = clock.anchor(SERVER);
    dev.run(HOUR);
    const b = clock.checkpoint();
    await Promise.all([a, b]);
    dev.reboot(0, 1000);
    dev.wall -= 10 * DAY; // no wall help: the floor shows what was persisted last
    const after = await open();
    expect(after.status().floorMs).toBe(SERVER + HOUR + 1000);
  });
});

describe('SecureClock: across a reboot', () => {
  async function anchoredAndCheckpointed(): Promise<void> {
    const clock = await open();
    await clock.anchor(SERVER);
    dev.run(2 * HOUR);
    await clock.checkpoint();
  }

  it('estimates the power-off time from the wall clock, above the proven floor', async () => {
    await anchoredAndCheckpointed();
    dev.reboot(10 * HOUR, MIN);
    const clock = await open();
    expect(clock.now()).toBe(dev.real);
    const s = clock.status();
    expect(s).toMatchObject({ trusted: true, estimated: true, lastAnchorMs: SERVER });
    expect(s.floorMs).toBe(SERVER + 2 * HOUR + MIN);
    dev.run(MIN);
    expect(clock.now()).toBe(dev.real);
  });

  it('never goes below the high-water mark when the wall clock was set back', async () => {
    await anchoredAndCheckpointed();
    dev.reboot(3 * DAY, 5 * MIN);
    dev.wall -= 30 * DAY;
    const clock = await open();
    const rollbacks: KeywardenError[] = [];
    clock.on('rollback', (e) => rollbacks.push(e));
    // Hidden power-off time is lost (docs/policy.md), but time never goes backwards.
    expect(clock.now()).toBe(SERVER + 2 * HOUR + 5 * MIN);
    expect(rollbacks.map((e) => e.code)).toEqual(['CLOCK_ROLLBACK']);
    expect(clock.status().rollbackDetected).toBe(true);
  });

  it('keeps counting in a wall clock that stays set back', async () => {
    await anchoredAndCheckpointed();
    dev.reboot(HOUR, MIN);
    dev.wall -= 30 * DAY;
    const first = await open();
    const t1 = first.now();
    dev.run(HOUR);
    await first.checkpoint();
    dev.reboot(6 * HOUR, MIN); // the RTC keeps running in the wrong year
    const second = await open();
    expect(second.now()).toBe(t1 + HOUR + 6 * HOUR + MIN);
  });

  it('lets a forward wall clock shorten time until fixed, never raising the floor', async () => {
    await anchoredAndCheckpointed();
    dev.reboot(HOUR, MIN);
    dev.wall += 365 * DAY;
    const inflated = await open();
    expect(inflated.now()).toBe(dev.real + 365 * DAY);
    expect(inflated.status().floorMs).toBe(SERVER + 2 * HOUR + MIN);
    await inflated.checkpoint();
    dev.reboot(HOUR, MIN);
    dev.wall -= 365 * DAY; // fixed
    const fixed = await open();
    expect(fixed.now()).toBe(SERVER + 2 * HOUR + 2 * MIN);
    expect(fixed.now()).toBeLessThanOrEqual(dev.real);
    await fixed.anchor(dev.real);
    expect(fixed.now()).toBe(dev.real);
    expect(fixed.status().estimated).toBe(false);
  });

  it('resumes the estimate exactly in a second process of the same boot', async () => {
    await anchoredAndCheckpointed();
    dev.reboot(4 * HOUR, MIN);
    const first = await open();
    const t = first.now();
    dev.run(MIN);
    dev.wall += 20 * DAY; // would change a fresh estimate, must not change this boot's
    const second = await open();
    expect(second.now()).toBe(t + MIN);
    expect(second.status().estimated).toBe(true);
  });

  it('works from the anchor alone when no checkpoint was taken', async () => {
    const clock = await open();
    await clock.anchor(SERVER);
    dev.run(HOUR); // lost: never checkpointed
    dev.reboot(HOUR, 2 * MIN);
    dev.wall = 0; // a box without RTC boots in 1970
    const after = await open();
    expect(after.now()).toBe(SERVER + 2 * MIN);
  });
});

describe('SecureClock: state file', () => {
  async function anchored(): Promise<void> {
    const clock = await open();
    await clock.anchor(SERVER);
  }

  it('starts untrusted with STORE_TAMPERED when a byte was changed', async () => {
    await anchored();
    const blob = await readFile(file);
    blob[blob.length - 20]! ^= 0x01;
    await writeFile(file, blob);
    const clock = await open();
    expect(clock.nowOrUndefined()).toBeUndefined();
    expect(clock.status().loadError).toMatchObject({ code: 'STORE_TAMPERED', number: 7500 });
    await clock.anchor(SERVER + HOUR); // the next anchor repairs it
    expect((await open()).now()).toBe(SERVER + HOUR);
  });

  it('refuses another device state (other key), garbage and truncation', async () => {
    await anchored();
    const foreign = await open(dev, randomBytes(32));
    expect(foreign.status()).toMatchObject({
      trusted: false,
      loadError: { code: 'STORE_TAMPERED' },
    });
    for (const bad of [Buffer.from('{"version":1}'), readFileSync(file).subarray(0, 20)]) {
      await writeFile(file, bad);
      const clock = await open();
      expect(clock.status().trusted).toBe(false);
      expect(clock.status().loadError?.code).toBe('STORE_TAMPERED');
    }
  });

  it('reports an unreadable state path as IO_FAILED and starts untrusted', async () => {
    file = dir; // a directory cannot be read as a file
    const clock = await open();
    expect(clock.status()).toMatchObject({ trusted: false, loadError: { code: 'IO_FAILED' } });
  });
});

describe('systemTimeSource', () => {
  const procFs = (files: Record<string, string>) => (p: string) => {
    const v = files[p];
    if (v === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return v;
  };

  it('reads the boot id and the boot timeline from /proc', () => {
    const files = { [BOOT_ID_PATH]: 'b7e1-42\n', [UPTIME_PATH]: '1000.50 3000.00\n' };
    let hr = 5_000_000;
    const src = systemTimeSource({ readText: procFs(files), hrtimeMs: () => hr, wallMs: () => 7 });
    expect(src.bootId()).toBe('b7e1-42');
    expect(src.wallMs()).toBe(7);
    expect(src.monotonicMs()).toBe(1_000_500);
    hr += 250; // hrtime gives the resolution /proc/uptime lacks
    expect(src.monotonicMs()).toBe(1_000_750);
  });

  it('catches up with suspend time that hrtime does not count', () => {
    const files: Record<string, string> = { [BOOT_ID_PATH]: 'b', [UPTIME_PATH]: '100.00 0' };
    let hr = 0;
    const src = systemTimeSource({ readText: procFs(files), hrtimeMs: () => hr });
    expect(src.monotonicMs()).toBe(100_000);
    files[UPTIME_PATH] = '3700.00 0'; // an hour asleep; CLOCK_MONOTONIC stood still
    hr += 10;
    expect(src.monotonicMs()).toBe(3_700_000);
    hr += 5;
    expect(src.monotonicMs()).toBe(3_700_005);
  });

  it('never goes backwards', () => {
    const files: Record<string, string> = { [BOOT_ID_PATH]: 'b', [UPTIME_PATH]: '100.00 0' };
    let hr = 0;
    const src = systemTimeSource({ readText: procFs(files), hrtimeMs: () => hr });
    const first = src.monotonicMs();
    hr -= 50; // a misbehaving reading
    expect(src.monotonicMs()).toBe(first);
  });

  it('falls back to a per-process boot id and a timeline from 0 without /proc', () => {
    let hr = 123_456;
    const read = procFs({});
    const a = systemTimeSource({ readText: read, hrtimeMs: () => hr });
    const b = systemTimeSource({ readText: read, hrtimeMs: () => hr });
    expect(a.bootId()).toMatch(/^process-/);
    expect(a.bootId()).not.toBe(b.bootId());
    expect(a.monotonicMs()).toBe(0);
    hr += 40;
    expect(a.monotonicMs()).toBe(40);
  });

  it('reads the real clocks of this machine', () => {
    const src = systemTimeSource();
    const m1 = src.monotonicMs();
    const m2 = src.monotonicMs();
    expect(m2).toBeGreaterThanOrEqual(m1);
    expect(Math.abs(src.wallMs() - Date.now())).toBeLessThan(1000);
    if (existsSync(BOOT_ID_PATH)) {
      expect(src.bootId()).toBe(readFileSync(BOOT_ID_PATH, 'utf8').trim());
      const uptime = Number.parseFloat(readFileSync(UPTIME_PATH, 'utf8')) * 1000;
      expect(Math.abs(src.monotonicMs() - uptime)).toBeLessThan(1000);
    }
  });
});
