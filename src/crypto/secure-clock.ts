import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { kwError, type KeywardenError } from '../errors/index.js';
import { writeFileAtomic } from '../io/atomic-file.js';
import { NODE_FS, type FileSystem } from '../io/fs.js';
import { aeadUnwrap, aeadWrap } from './aead.js';

/**
 * Where a {@link SecureClock} reads time. Only the server anchors are trusted; these three
 * readings carry trusted time forward between anchors.
 */
export interface TimeSource {
  /** The wall clock, ms since the Unix epoch. Untrusted: the user, RTC or NTP may set it. */
  wallMs(): number;
  /**
   * ms elapsed since the boot named by {@link bootId}, never decreasing and counting suspend
   * (CLOCK_BOOTTIME), so that every process of one boot reads the same timeline.
   */
  monotonicMs(): number;
  /** Names the current boot; a different value means a reboot happened in between. */
  bootId(): string;
}

/** Test seams of {@link systemTimeSource}. */
export interface SystemTimeDeps {
  /** Reads a /proc file synchronously (default fs.readFileSync). */
  readonly readText?: (file: string) => string;
  /** A monotonic reading in ms, arbitrary origin (default process.hrtime). */
  readonly hrtimeMs?: () => number;
  /** Wall clock (default Date.now). */
  readonly wallMs?: () => number;
}

/** Linux's per-boot random UUID (proc(5)). */
export const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';
/** Seconds since boot, CLOCK_BOOTTIME, two decimals (proc(5)). */
export const UPTIME_PATH = '/proc/uptime';
/** /proc/uptime resolution: smaller gaps against the hrtime projection are rounding. */
const UPTIME_RESOLUTION_MS = 20;

function readOptional(read: (file: string) => string, file: string): string | undefined {
  try {
    return read(file);
  } catch {
    return undefined; // no /proc (containers, other OSes): the caller falls back
  }
}

/**
 * The device's clocks: Date.now for the wall, and the boot timeline from /proc. Monotonic
 * time is /proc/uptime (CLOCK_BOOTTIME, 10 ms steps) refined by process.hrtime
 * (CLOCK_MONOTONIC, which stops during suspend: a larger uptime re-bases it), so a
 * restarted process resumes the same timeline within the boot. Without /proc the boot id is
 * random per process and monotonic time starts at 0: every start then counts as a reboot,
 * which is safe (see docs/policy.md), only less precise.
 */
export function systemTimeSource(deps: SystemTimeDeps = {}): TimeSource {
  const read = deps.readText ?? ((f: string) => readFileSync(f, 'utf8'));
  const hr = deps.hrtimeMs ?? (() => Number(process.hrtime.bigint()) / 1e6);
  const wall = deps.wallMs ?? Date.now;
  const uptimeMs = (): number | undefined => {
    const s = Number.parseFloat(readOptional(read, UPTIME_PATH) ?? '');
    return Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
  };
  const procBootId = readOptional(read, BOOT_ID_PATH)?.trim();
  const startUptime = procBootId ? uptimeMs() : undefined;
  const useProc = startUptime !== undefined;
  const bootId = useProc ? procBootId! : `process-${randomUUID()}`;
  const hr0 = hr();
  let offset = startUptime ?? 0;
  let last = 0;
  return {
    wallMs: () => wall(),
    bootId: () => bootId,
    monotonicMs: () => {
      const elapsed = hr() - hr0;
      const up = useProc ? uptimeMs() : undefined;
      if (up !== undefined && up > offset + elapsed + UPTIME_RESOLUTION_MS) offset = up - elapsed;
      last = Math.max(last, offset + elapsed);
      return last;
    },
  };
}

/** Options of {@link SecureClock.open}. */
export interface SecureClockOptions {
  /** The state file, e.g. `<state>/secure-clock.bin` (written 0600, atomically). */
  readonly file: string;
  /** 32 bytes, e.g. `KeyVault.storageKey('secure-clock')`: authenticates the state file. */
  readonly key: Uint8Array;
  /** Clocks (default {@link systemTimeSource}). */
  readonly source?: TimeSource;
  /** File system of the state file (default {@link NODE_FS}). */
  readonly fs?: FileSystem;
  /**
   * How far the wall clock may stray from trusted time before 'rollback' / 'forward-jump'
   * fire, and how far back a server anchor may lag without stepping trusted time back
   * (network latency, out-of-order answers). Default 2 minutes.
   */
  readonly toleranceMs?: number;
}

/** What {@link SecureClock.status} reports. */
export interface ClockStatus {
  /** A server anchor (this boot, or carried over a reboot) stands behind {@link SecureClock.now}. */
  readonly trusted: boolean;
  /** Trusted time was carried across a reboot without server contact (docs/policy.md). */
  readonly estimated: boolean;
  /** The server time of the last anchor, ms since the epoch. */
  readonly lastAnchorMs: number | undefined;
  /** The wall clock fell behind trusted time by more than the tolerance since the last anchor. */
  readonly rollbackDetected: boolean;
  /** Wall clock minus trusted time, ms (negative: the wall clock is behind). */
  readonly driftMs: number | undefined;
  /** A proven lower bound of the real time, ms; equals trusted time unless estimated. */
  readonly floorMs: number | undefined;
  /** Why the state file was not used at open (STORE_TAMPERED, IO_FAILED); the clock then starts untrusted. */
  readonly loadError: KeywardenError | undefined;
}

/** Payload of the 'forward-jump' event. */
export interface ForwardJump {
  /** The wall clock, ms. */
  readonly wallMs: number;
  /** Trusted time, ms (unchanged by the jump). */
  readonly trustedMs: number;
  /** How far the wall clock is ahead, ms. */
  readonly driftMs: number;
}

/** Events of a {@link SecureClock}. Both fire once per transition, from `now()`/`status()`. */
export interface SecureClockEvents {
  /** The wall clock went behind trusted time (CLOCK_ROLLBACK). Trusted time is unaffected. */
  rollback: [KeywardenError];
  /** The wall clock went ahead of trusted time. Trusted time is unaffected. */
  'forward-jump': [ForwardJump];
}

/** A point of trusted time on one boot's monotonic timeline (persisted). */
interface Mark {
  /** Trusted time at `monoMs`. */
  readonly trustedMs: number;
  /** Proven lower bound of the real time at `monoMs` (= trustedMs when exact). */
  readonly floorMs: number;
  /** The raw wall clock at `monoMs`; its later delta estimates time across a reboot. */
  readonly wallMs: number;
  readonly bootId: string;
  readonly monoMs: number;
  /** Anchored in this boot (true) or carried over a reboot (false). */
  readonly exact: boolean;
  /** Server time of the last anchor. */
  readonly lastAnchorMs: number;
}

const STATE_CONTEXT = 'keywarden/v1 secure-clock';
const DEFAULT_TOLERANCE_MS = 120_000;

/**
 * Trusted time for policy decisions (issue 4). Signed server times anchor it; the boot's
 * monotonic clock carries it forward, so setting the wall clock back or forth changes
 * nothing within a boot, and a restarted process resumes exactly. Across a reboot without
 * server contact it is an estimate that can only err late, never early (docs/policy.md
 * "Secure clock"). The state is persisted, authenticated with AES-256-GCM, written atomically.
 */
export class SecureClock extends EventEmitter<SecureClockEvents> {
  private mark: Mark | undefined;
  private wallState: 'ok' | 'behind' | 'ahead' = 'ok';
  private rollbackSeen = false;
  private writes: Promise<void> = Promise.resolve();
  private readonly toleranceMs: number;

  private constructor(
    private readonly opts: SecureClockOptions,
    private readonly source: TimeSource,
    private readonly loadError: KeywardenError | undefined,
  ) {
    super();
    this.toleranceMs = opts.toleranceMs ?? DEFAULT_TOLERANCE_MS;
  }

  /**
   * Loads the state file. A missing file gives an untrusted clock; an edited, truncated or
   * foreign file (another device's key) gives an untrusted clock with `status().loadError`
   * STORE_TAMPERED, never a throw. After a reboot the carried-over estimate is persisted
   * at once, so later processes of this boot resume it exactly.
   */
  static async open(opts: SecureClockOptions): Promise<SecureClock> {
    if (opts.key.length !== 32)
      throw kwError('CONFIG_INVALID', 'the secure clock key must be 32 bytes', {
        length: opts.key.length,
      });
    const source = opts.source ?? systemTimeSource();
    const { mark, error } = await loadState(opts.file, opts.key, opts.fs ?? NODE_FS);
    const clock = new SecureClock(opts, source, error);
    if (!mark) return clock;
    const mono = source.monotonicMs();
    // The boot id alone tells a reboot. In the same boot a new process can read a timeline a
    // little behind the mark (/proc/uptime has 10 ms steps, the writer extrapolated with
    // hrtime); `current()` counts no time until it catches up, instead of adding a whole
    // uptime as if the box had rebooted.
    if (mark.bootId === source.bootId()) {
      clock.mark = mark;
    } else {
      clock.mark = acrossReboot(mark, source.bootId(), mono, source.wallMs());
      await clock.persist();
    }
    return clock;
  }

  /** Trusted time, ms since the epoch. CLOCK_UNTRUSTED before the first anchor. */
  now(): number {
    const t = this.nowOrUndefined();
    if (t === undefined)
      throw kwError('CLOCK_UNTRUSTED', 'no signed server time has anchored the secure clock yet');
    return t;
  }

  /** Trusted time, or undefined before the first anchor. */
  nowOrUndefined(): number | undefined {
    const p = this.project();
    if (!p) return undefined;
    this.watchWall(p.trustedMs, p.wallMs);
    return p.trustedMs;
  }

  /** Trust, drift and rollback state (runs the wall-clock check, so events may fire). */
  status(): ClockStatus {
    const p = this.project();
    if (p) this.watchWall(p.trustedMs, p.wallMs);
    return {
      trusted: p !== undefined,
      estimated: this.mark !== undefined && !this.mark.exact,
      lastAnchorMs: this.mark?.lastAnchorMs,
      rollbackDetected: this.rollbackSeen,
      driftMs: p && p.wallMs - p.trustedMs,
      floorMs: p?.floorMs,
      loadError: this.loadError,
    };
  }

  /**
   * Anchors trusted time to a server time from a verified signed response (the envelope
   * timestamp, License.server_time_ms) and persists it. The server is authoritative, except
   * that an anchor lagging at most the tolerance behind an exact clock does not step it
   * back (latency, answers arriving out of order).
   */
  async anchor(serverTimeMs: number): Promise<void> {
    if (!Number.isSafeInteger(serverTimeMs) || serverTimeMs <= 0)
      throw kwError('PROTOCOL_ERROR', 'the server time is not a positive ms timestamp', {
        serverTimeMs,
      });
    const current = this.mark?.exact ? this.project()?.trustedMs : undefined;
    const keep =
      current !== undefined &&
      serverTimeMs <= current &&
      current - serverTimeMs <= this.toleranceMs;
    const trustedMs = keep ? current : serverTimeMs;
    this.mark = {
      trustedMs,
      floorMs: trustedMs,
      wallMs: this.source.wallMs(),
      bootId: this.source.bootId(),
      monoMs: this.source.monotonicMs(),
      exact: true,
      lastAnchorMs: serverTimeMs,
    };
    this.wallState = 'ok';
    this.rollbackSeen = false;
    await this.persist();
  }

  /**
   * Persists the current trusted time as the high-water mark a reboot resumes from. Call it
   * periodically (minutes) and at shutdown: time between the last checkpoint and a power
   * cut is time the device cannot prove. A no-op while untrusted.
   */
  async checkpoint(): Promise<void> {
    const m = this.mark;
    const p = this.project();
    if (!m || !p) return;
    this.mark = {
      ...m,
      trustedMs: p.trustedMs,
      floorMs: p.floorMs,
      wallMs: p.wallMs,
      monoMs: p.monoMs,
    };
    await this.persist();
  }

  private project():
    { trustedMs: number; floorMs: number; wallMs: number; monoMs: number } | undefined {
    const m = this.mark;
    if (!m) return undefined;
    const monoMs = this.source.monotonicMs();
    const dt = Math.max(0, monoMs - m.monoMs);
    return {
      trustedMs: Math.floor(m.trustedMs + dt),
      floorMs: Math.floor(m.floorMs + dt),
      wallMs: this.source.wallMs(),
      monoMs,
    };
  }

  private watchWall(trustedMs: number, wallMs: number): void {
    const driftMs = wallMs - trustedMs;
    const state =
      driftMs < -this.toleranceMs ? 'behind' : driftMs > this.toleranceMs ? 'ahead' : 'ok';
    if (state === this.wallState) return;
    this.wallState = state;
    if (state === 'behind') {
      this.rollbackSeen = true;
      this.emit(
        'rollback',
        kwError(
          'CLOCK_ROLLBACK',
          `the wall clock is ${Math.round(-driftMs / 1000)} s behind trusted time`,
          { wallMs, trustedMs, driftMs },
        ),
      );
    } else if (state === 'ahead') {
      this.emit('forward-jump', { wallMs, trustedMs, driftMs });
    }
  }

  /** Writes are chained so that they land in call order. */
  private persist(): Promise<void> {
    const mark = this.mark;
    if (!mark) return Promise.resolve();
    const { file, key } = this.opts;
    const fs = this.opts.fs ?? NODE_FS;
    const write = async (): Promise<void> => {
      await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      const body = Buffer.from(JSON.stringify({ version: 1, mark }), 'utf8');
      await writeFileAtomic(file, aeadWrap(key, body, STATE_CONTEXT), 0o600, fs);
    };
    // A failed earlier write was already reported to its own caller.
    const next = this.writes.catch(() => undefined).then(write);
    this.writes = next;
    return next;
  }
}

/**
 * Trusted time across a reboot (docs/policy.md "Across a reboot"). The floor is proven: at
 * least this boot's uptime has passed since the mark. The wall clock's delta since the mark
 * estimates the power-off time, used only when it did not go backwards; the estimate can
 * shorten a window, never extend one below the floor.
 */
function acrossReboot(m: Mark, bootId: string, monoMs: number, wallMs: number): Mark {
  const floorMs = m.floorMs + monoMs;
  const wallDelta = wallMs - m.wallMs;
  const estimate = wallDelta >= 0 ? m.trustedMs + wallDelta : Number.NEGATIVE_INFINITY;
  return {
    trustedMs: Math.max(floorMs, estimate),
    floorMs,
    wallMs,
    bootId,
    monoMs,
    exact: false,
    lastAnchorMs: m.lastAnchorMs,
  };
}

async function loadState(
  file: string,
  key: Uint8Array,
  fs: FileSystem,
): Promise<{ mark?: Mark; error?: KeywardenError }> {
  let blob: Buffer;
  try {
    blob = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return { error: kwError('IO_FAILED', `cannot read the secure clock state ${file}`, {}, err) };
  }
  try {
    const text = Buffer.from(aeadUnwrap(key, blob, STATE_CONTEXT)).toString('utf8');
    return { mark: parseMark(JSON.parse(text) as unknown) };
  } catch (err) {
    return {
      error: kwError(
        'STORE_TAMPERED',
        `the secure clock state ${file} does not authenticate; the clock starts untrusted`,
        { file },
        err,
      ),
    };
  }
}

function parseMark(v: unknown): Mark {
  const s = v as { version?: unknown; mark?: Record<string, unknown> };
  const m = s?.mark;
  const num = (k: string): boolean => typeof m?.[k] === 'number' && Number.isFinite(m[k]);
  if (
    s?.version !== 1 ||
    !['trustedMs', 'floorMs', 'wallMs', 'monoMs', 'lastAnchorMs'].every(num) ||
    typeof m?.bootId !== 'string' ||
    typeof m?.exact !== 'boolean'
  )
    throw new Error('unexpected secure clock state layout');
  return m as unknown as Mark;
}
