/**
 * The output monitor (issue 6, docs/output-protection.md "The output monitor"): it keeps the
 * box's output state current from DRM/KMS (the native libdrm backend, or the scripted fake),
 * engages protection (HDCP) when a license needs it, and turns changes during playback into
 * the brief's codes:
 * - 6031 the HDCP link was lost (Enabled → Desired on an output that stays active);
 * - 6035 a new output was connected;
 * - 6033/6034 the sink turned out revoked/tampered (where the platform can tell);
 * - 6032 HDCP was requested and did not come up within `hdcpTimeoutMs`.
 * The verdict for a license is the pure policy's decision ({@link decideOutput}) on the
 * current state; while an output change made a license's outputs fall short, the change's
 * code is reported instead of the policy's generic one, until the policy is satisfied again.
 */
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { isKeywardenError, kwError, type KeywardenError } from '../errors/index.js';
import {
  kmsBuildInfo,
  openKmsDevice,
  type KmsDevice,
  type KmsOpenOptions,
  type KmsScenario,
  type NativeKmsSnapshot,
  type NativeUevent,
} from '../native/binding.js';
import type { keywarden } from '../protocol/generated/proto.js';
import {
  addedOutputs,
  decideOutput,
  isActive,
  linkLosses,
  requirementsOf,
  toClientInfoOutputs,
  toOutputCheck,
  trackOf,
  tracksOf,
  type OutputVerdictCheck,
} from './policy/index.js';
import type {
  DecideOptions,
  EngageAttempt,
  EngageRequest,
  OutputConnectorState,
  OutputDecision,
  OutputState,
  Track,
} from './types.js';

/** Which backend reads the outputs. */
export type OutputBackend = 'auto' | 'libdrm' | 'scripted' | 'none';

/** Options of {@link OutputMonitor.open}. */
export interface OutputMonitorOptions {
  /**
   * 'auto' (default): libdrm when the addon has it and a /dev/dri/card* exists, else none;
   * 'libdrm'; 'scripted' (with `scenario`); 'none' (the state is unknown: licenses asking
   * more than best effort are refused with 6036).
   */
  readonly backend?: OutputBackend;
  /** The DRM device for libdrm (default: the first /dev/dri/card* that has connectors). */
  readonly device?: string;
  /**
   * 'drop' (default): give DRM master back right after opening, so a compositor or player
   * started later can drive the display (HDCP requests then answer 'not DRM master', 6037);
   * 'keep': hold master when the card had none (the agent can engage HDCP itself).
   */
  readonly drmMaster?: 'keep' | 'drop';
  /** The scripted backend's scenario (validated: src/output/scenario.ts). */
  readonly scenario?: KmsScenario;
  /** How long HDCP may take from Desired to Enabled before it counts as failed (6032). Default 5 s. */
  readonly hdcpTimeoutMs?: number;
  /** Re-read the state this often too (uevents are the fast path; some drivers send none). Default 2 s; 0 = never. */
  readonly pollMs?: number;
  /** Opens the device (tests inject a fake). */
  readonly openDevice?: (options: KmsOpenOptions) => KmsDevice;
  /** Monotonic-ish clock, ms (tests). */
  readonly now?: () => number;
}

/** An output change that matters to playback, with its code. */
export interface OutputIncident {
  /** The connector it happened on. */
  readonly connector: string;
  /** 6031, 6032, 6033, 6034 or 6035. */
  readonly error: KeywardenError;
}

/** Events of an {@link OutputMonitor}. */
export interface OutputMonitorEvents {
  /** The output state changed (read it with {@link OutputMonitor.state}). */
  change: [OutputState];
  /** A change during playback: link lost, output added, sink revoked, HDCP failed. */
  incident: [OutputIncident];
  /** The monitor could not read or watch the outputs (it keeps going, polling). */
  problem: [KeywardenError];
}

interface Attempt extends EngageAttempt {
  readonly atMs: number;
}

const DEFAULT_HDCP_TIMEOUT_MS = 5000;
const DEFAULT_POLL_MS = 2000;

/** The first /dev/dri/card* (sorted), or undefined: is there a DRM device at all? */
export function defaultDrmDevice(dir = '/dev/dri'): string | undefined {
  if (!existsSync(dir)) return undefined;
  const cards = readdirSync(dir)
    .filter((n) => /^card\d+$/.test(n))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  return cards[0] === undefined ? undefined : `${dir}/${cards[0]}`;
}

/** Keeps the output state, engages protection and reports changes during playback. */
export class OutputMonitor extends EventEmitter<OutputMonitorEvents> {
  private current: OutputState;
  private readonly attempts = new Map<number, Attempt>();
  /** Changes that still explain why an output falls short, by connector id. */
  private readonly incidents = new Map<number, OutputIncident>();
  /** Connectors on which this monitor requested protection (released on close). */
  private readonly requested = new Set<number>();
  private pollTimer: NodeJS.Timeout | undefined;
  private hdcpTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private watching = false;
  private referenced = false;
  private readonly hdcpTimeoutMs: number;
  private readonly now: () => number;

  private constructor(
    private readonly device: KmsDevice | undefined,
    private readonly unknownReason: string,
    readonly backend: 'libdrm' | 'scripted' | 'none',
    opts: OutputMonitorOptions,
  ) {
    super();
    this.hdcpTimeoutMs = opts.hdcpTimeoutMs ?? DEFAULT_HDCP_TIMEOUT_MS;
    this.now = opts.now ?? Date.now;
    this.current = this.read();
    const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
    if (device && pollMs > 0) {
      this.pollTimer = setInterval(() => this.refresh(), pollMs);
      this.pollTimer.unref();
    }
  }

  /**
   * Opens the backend and reads the state once. Never throws for a missing device or a
   * libdrm-less build: the state is then unknown, with the reason. A bad scenario or a
   * device that exists but cannot be opened is a coded error.
   */
  static open(opts: OutputMonitorOptions = {}): OutputMonitor {
    const choice = opts.backend ?? 'auto';
    const open = opts.openDevice ?? openKmsDevice;
    if (choice === 'none')
      return new OutputMonitor(undefined, 'output monitoring is off', 'none', opts);
    if (choice === 'scripted') {
      if (!opts.scenario)
        throw kwError('KMS_SCENARIO_INVALID', 'the scripted output backend needs a scenario');
      return new OutputMonitor(
        open({ backend: 'scripted', scenario: opts.scenario }),
        '',
        'scripted',
        opts,
      );
    }
    if (choice === 'auto') {
      if (!opts.openDevice && !safeBuildInfo().libdrm)
        return new OutputMonitor(undefined, 'the addon was built without libdrm', 'none', opts);
      if (!opts.device && !defaultDrmDevice())
        return new OutputMonitor(undefined, 'no DRM device (/dev/dri/card*)', 'none', opts);
    }
    return new OutputMonitor(
      open({
        backend: 'libdrm',
        // Without a path the addon picks the first card that has connectors (a Pi's card0
        // may be render-only).
        ...(opts.device && { path: opts.device }),
        dropMaster: opts.drmMaster !== 'keep',
      }),
      '',
      'libdrm',
      opts,
    );
  }

  /** A monitor that knows nothing of the outputs, for `reason` (the state stays unknown). */
  static unknown(reason: string): OutputMonitor {
    return new OutputMonitor(undefined, reason, 'none', {});
  }

  /** The current state, with this monitor's protection requests folded in. */
  get state(): OutputState {
    return this.current;
  }

  /** The device path or scenario name, for logs and `keywarden outputs`. */
  describe(): string {
    if (!this.device) return `none (${this.unknownReason})`;
    try {
      return `${this.backend} ${this.device.snapshot().device}`;
    } catch {
      return this.backend;
    }
  }

  /**
   * Starts delivering uevents (hot-plug, property changes). When netlink is unavailable the
   * monitor reports UEVENT_FAILED once and relies on polling. `keepAlive` false (default)
   * lets the process exit while watching.
   */
  watch(keepAlive = false): void {
    if (!this.device || this.watching || this.closed) return;
    this.watching = true;
    try {
      this.device.watch((event) => this.onUevent(event));
      if (keepAlive) this.ref();
      else this.device.unref();
    } catch (err) {
      this.emit('problem', asError(err, 'UEVENT_FAILED'));
    }
  }

  /** The watcher keeps the process alive (the CLI's --watch). */
  ref(): void {
    this.referenced = true;
    this.device?.ref();
    this.pollTimer?.ref();
  }

  /** Re-reads the state now and reports what changed. */
  refresh(): void {
    if (this.closed) return;
    const before = this.current;
    const after = this.read();
    this.current = after;
    this.noteTransitions(before, after);
    if (!sameState(before, after)) this.emit('change', after);
  }

  /** The policy decision for one track of `license` on the current state. */
  decide(
    license: keywarden.v1.ILicense,
    track: Track,
    options: DecideOptions = {},
  ): OutputDecision {
    return decideOutput(requirementsOf(license), this.current, track, options);
  }

  /**
   * The verdict for the policy engine: the decisions for the key's track (or every track of
   * the license), with protection requested for whatever is pending, and the incident's code
   * in place of the policy's while an output change keeps the outputs short.
   */
  check(license: keywarden.v1.ILicense, kid?: string): OutputVerdictCheck {
    const decisions = this.tracksFor(license, kid).map((t) => this.decide(license, t));
    for (const d of decisions) if (d.engage.length) this.engage(d.engage);
    const verdict = toOutputCheck(...decisions);
    if (verdict.verdict === 'allowed') return verdict;
    const incident = this.incidentFor(decisions);
    return incident ? { verdict: 'restricted', error: incident.error } : verdict;
  }

  /**
   * Engages what `license` needs now and waits until no decision is pending (HDCP came up,
   * failed, or timed out); resolves with the final decisions. Used before a session's first
   * key is used.
   */
  async prepare(license: keywarden.v1.ILicense, signal?: AbortSignal): Promise<OutputDecision[]> {
    const decide = (): OutputDecision[] => tracksOf(license).map((t) => this.decide(license, t));
    let decisions = decide();
    const deadline = this.now() + this.hdcpTimeoutMs + 500;
    while (decisions.some((d) => d.action === 'pending') && !this.closed && !signal?.aborted) {
      for (const d of decisions) if (d.engage.length) this.engage(d.engage);
      if (this.now() > deadline) break;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          this.off('change', done);
          resolve();
        };
        const t = setTimeout(done, 50);
        this.once('change', done);
      });
      this.refresh();
      decisions = decide();
    }
    return decisions;
  }

  /** The outputs for a license request's client info. */
  clientInfoOutputs(): keywarden.v1.IOutputConnector[] {
    return toClientInfoOutputs(this.current);
  }

  /** Stops watching and polling; releases the protection this monitor requested. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.hdcpTimer);
    if (!this.device) return;
    for (const id of this.requested) {
      try {
        this.device.releaseProtection(id);
      } catch {
        // The connector may be gone; nothing to release then.
      }
    }
    this.device.close();
  }

  // -----------------------------------------------------------------------------------

  private tracksFor(license: keywarden.v1.ILicense, kid?: string): Track[] {
    if (kid !== undefined) {
      const key = (license.keys ?? []).find(
        (k) => k.kid && Buffer.from(k.kid).toString('hex') === kid,
      );
      if (key) return [trackOf(key.trackType)];
    }
    return tracksOf(license);
  }

  /** Requests the mechanisms of `requests` not requested yet. */
  private engage(requests: readonly EngageRequest[]): void {
    if (!this.device || this.closed) return;
    let changed = false;
    for (const r of requests) {
      const prev = this.attempts.get(r.connectorId);
      if (
        prev &&
        prev.mechanism === r.mechanism &&
        !(r.mechanism === 'hdcp' && (prev.contentType ?? 0) < r.contentType)
      )
        continue;
      changed = true;
      if (r.mechanism === 'cgms-a') {
        // KMS has no standard CGMS-A property; the native layer offers no way to assert it.
        this.attempts.set(r.connectorId, {
          mechanism: 'cgms-a',
          state: 'failed',
          cgmsA: r.value,
          code: 'OUTPUT_CANNOT_ENGAGE',
          reason: 'CGMS-A cannot be asserted through KMS on this platform',
          atMs: this.now(),
        });
        continue;
      }
      let attempt: Attempt;
      try {
        const res = this.device.requestProtection(r.connectorId, r.contentType);
        attempt = res.ok
          ? { mechanism: 'hdcp', state: 'requested', contentType: r.contentType, atMs: this.now() }
          : {
              mechanism: 'hdcp',
              state: 'failed',
              contentType: r.contentType,
              code: 'OUTPUT_CANNOT_ENGAGE',
              reason: res.reason ?? 'the request was refused',
              atMs: this.now(),
            };
        if (res.ok) this.requested.add(r.connectorId);
      } catch (err) {
        attempt = {
          mechanism: 'hdcp',
          state: 'failed',
          contentType: r.contentType,
          code: 'OUTPUT_CANNOT_ENGAGE',
          reason: asError(err, 'KMS_DEVICE_FAILED').message,
          atMs: this.now(),
        };
      }
      this.attempts.set(r.connectorId, attempt);
    }
    if (!changed) return;
    this.armHdcpTimer();
    this.current = this.withAttempts(this.current);
    this.emit('change', this.current);
  }

  /** Marks HDCP requests that did not come up in time as failed (6032). */
  private armHdcpTimer(): void {
    clearTimeout(this.hdcpTimer);
    const waiting = [...this.attempts.values()].filter(
      (a) => a.mechanism === 'hdcp' && a.state === 'requested',
    );
    if (!waiting.length || this.closed) return;
    const due = Math.min(...waiting.map((a) => a.atMs + this.hdcpTimeoutMs));
    this.hdcpTimer = setTimeout(() => this.expireAttempts(), Math.max(0, due - this.now()) + 1);
    if (!this.referenced) this.hdcpTimer.unref();
  }

  private expireAttempts(): void {
    this.refresh();
    const now = this.now();
    let changed = false;
    if (this.current.known)
      for (const c of this.current.connectors) {
        const a = this.attempts.get(c.id);
        if (!a || a.mechanism !== 'hdcp' || a.state !== 'requested') continue;
        if (c.contentProtection === 'enabled' || now < a.atMs + this.hdcpTimeoutMs) continue;
        const failed: Attempt = {
          ...a,
          state: 'failed',
          code: 'OUTPUT_RENEGOTIATION_FAILED',
          reason: `HDCP did not come up within ${this.hdcpTimeoutMs} ms`,
        };
        this.attempts.set(c.id, failed);
        this.addIncident(
          c,
          kwError('OUTPUT_RENEGOTIATION_FAILED', `${c.name}: ${failed.reason}`, {
            connector: c.name,
          }),
        );
        changed = true;
      }
    if (changed) {
      this.current = this.withAttempts(this.current);
      this.emit('change', this.current);
    }
    this.armHdcpTimer();
  }

  private onUevent(event: NativeUevent): void {
    if (event.subsystem !== 'drm') return;
    this.refresh();
  }

  /** Reads the backend, folding in the attempts; unknown (with the reason) when it cannot. */
  private read(): OutputState {
    if (!this.device) return { known: false, reason: this.unknownReason };
    let snap: NativeKmsSnapshot;
    try {
      snap = this.device.snapshot();
    } catch (err) {
      const e = asError(err, 'KMS_DEVICE_FAILED');
      this.emit('problem', e);
      return { known: false, reason: e.message };
    }
    if (!snap.available)
      return { known: false, reason: snap.reason ?? 'the outputs cannot be read' };
    return this.withAttempts({ known: true, master: snap.master, connectors: snap.connectors });
  }

  private withAttempts(state: OutputState): OutputState {
    if (!state.known) return state;
    return {
      ...state,
      connectors: state.connectors.map((c): OutputConnectorState => {
        const a = this.attempts.get(c.id);
        const bare: OutputConnectorState = { ...c };
        delete (bare as { attempt?: unknown }).attempt;
        if (!a) return bare;
        const attempt: EngageAttempt = { ...a };
        delete (attempt as { atMs?: number }).atMs;
        return { ...bare, attempt };
      }),
    };
  }

  /** Records incidents for what changed from `before` to `after`; forgets healed ones. */
  private noteTransitions(before: OutputState, after: OutputState): void {
    if (!after.known) return;
    for (const c of linkLosses(before, after)) {
      // The kernel retries authentication itself (Desired): give it the usual time to return.
      const a = this.attempts.get(c.id);
      this.attempts.set(c.id, {
        mechanism: 'hdcp',
        state: 'requested',
        contentType: a?.contentType ?? (c.hdcpContentType === 'type1' ? 1 : 0),
        atMs: this.now(),
      });
      this.addIncident(
        c,
        kwError('OUTPUT_LINK_LOST', `${c.name}: the HDCP link was lost`, { connector: c.name }),
      );
      this.armHdcpTimer();
    }
    // Outputs that appear when nothing was known before are the start, not a change.
    if (before.known)
      for (const c of addedOutputs(before, after))
        this.addIncident(
          c,
          kwError('OUTPUT_CONNECTOR_ADDED', `${c.name} was connected during playback`, {
            connector: c.name,
          }),
        );
    const prev = before.known ? new Map(before.connectors.map((c) => [c.id, c])) : new Map();
    for (const c of after.connectors) {
      const was = prev.get(c.id) as OutputConnectorState | undefined;
      if (c.sink !== was?.sink && (c.sink === 'revoked' || c.sink === 'tampered'))
        this.addIncident(
          c,
          kwError(
            c.sink === 'revoked' ? 'OUTPUT_SINK_REVOKED' : 'OUTPUT_SINK_TAMPERED',
            `${c.name}: the connected sink is ${c.sink}`,
            { connector: c.name },
          ),
        );
      // A protection request on an output that was unplugged is void; so is a healed incident.
      if (!isActive(c)) {
        this.attempts.delete(c.id);
        this.incidents.delete(c.id);
      } else if (
        c.contentProtection === 'enabled' &&
        this.incidents.get(c.id)?.error.code === 'OUTPUT_LINK_LOST'
      )
        this.incidents.delete(c.id);
    }
    for (const id of this.incidents.keys())
      if (!after.connectors.some((c) => c.id === id)) this.incidents.delete(id);
  }

  private addIncident(c: OutputConnectorState, error: KeywardenError): void {
    const incident = { connector: c.name, error };
    this.incidents.set(c.id, incident);
    this.emit('incident', incident);
  }

  /** The incident on an output that the decisions find short (not allowed), if any. */
  private incidentFor(decisions: readonly OutputDecision[]): OutputIncident | undefined {
    for (const d of decisions)
      for (const o of d.outputs) {
        if (o.verdict !== 'pending' && o.verdict !== 'blocked') continue;
        const incident = this.incidents.get(o.connectorId);
        if (incident) return incident;
      }
    return undefined;
  }
}

function safeBuildInfo(): { libdrm: boolean } {
  try {
    return kmsBuildInfo();
  } catch {
    return { libdrm: false };
  }
}

function asError(err: unknown, code: 'UEVENT_FAILED' | 'KMS_DEVICE_FAILED'): KeywardenError {
  return isKeywardenError(err)
    ? err
    : kwError(code, String((err as Error)?.message ?? err), {}, err);
}

function sameState(a: OutputState, b: OutputState): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
