/**
 * The output-protection decision (issue 6, docs/output-protection.md "Decisions"): a pure
 * function of a license's requirements, the output state and the track type.
 */
import { kwError, type ErrorCode, type KeywardenError } from '../../errors/index.js';
import type { keywarden } from '../../protocol/generated/proto.js';
import type {
  CgmsAValue,
  CheckSide,
  DecideOptions,
  EngageRequest,
  HdcpContentType,
  HdcpRequirement,
  Mechanism,
  OutputAction,
  OutputCheckResult,
  OutputConnectorState,
  OutputDecision,
  OutputRequirements,
  OutputState,
  OutputVerdictKind,
  PerOutputDecision,
  ProtectionLevel,
  Resolution,
  Track,
} from '../types.js';
import { DEFAULT_CGMS_A, demandsMore, stricter } from './levels.js';
import { analogSideLive, isActive, profileOf } from './mechanisms.js';

/** The levels in force for one track, after the explicit requirements raised them. */
export interface EffectiveLevels {
  /** Uncompressed digital video (raised to Restricted by an explicit HDCP requirement). */
  readonly digitalVideo: ProtectionLevel;
  /** Analog video (Restricted with an explicit CGMS-A; Disallow with disable_analog_output). */
  readonly analogVideo: ProtectionLevel;
  /** Digital audio. */
  readonly digitalAudio: ProtectionLevel;
  /** HDCP content type to request and require. */
  readonly contentType: HdcpContentType;
  /** CGMS-A value to assert. */
  readonly cgmsA: CgmsAValue;
  /** The explicit HDCP requirement, for video tracks. */
  readonly hdcp?: HdcpRequirement;
}

/**
 * The levels in force for `track`. Video rules apply to 'video' and 'unknown', audio rules to
 * 'audio' and 'unknown'. An explicit HDCP requirement raises digital video to at least
 * Restricted; an explicit CGMS-A raises analog video to at least Restricted;
 * disable_analog_output makes it Disallow.
 */
export function effectiveLevels(req: OutputRequirements, track: Track): EffectiveLevels {
  const video = track !== 'audio';
  const audio = track !== 'video';
  const digitalVideo = !video
    ? 'unrestricted'
    : req.hdcp
      ? stricter(req.digitalVideo, 'restricted')
      : req.digitalVideo;
  const analogVideo = !video
    ? 'unrestricted'
    : req.disableAnalogOutput
      ? 'disallow'
      : req.cgmsA
        ? stricter(req.analogVideo, 'restricted')
        : req.analogVideo;
  return {
    digitalVideo,
    analogVideo,
    digitalAudio: audio ? req.digitalAudio : 'unrestricted',
    contentType: video && req.hdcp?.proof === 'type1' ? 1 : 0,
    cgmsA: req.cgmsA ?? DEFAULT_CGMS_A,
    ...(video && req.hdcp ? { hdcp: req.hdcp } : {}),
  };
}

interface Ctx {
  readonly master: boolean;
  readonly levels: EffectiveLevels;
}

interface Outcome {
  readonly result: OutputCheckResult;
  readonly engage?: EngageRequest;
}

const VERDICT_ORDER: readonly OutputVerdictKind[] = [
  'exempt',
  'unrestricted',
  'protected',
  'best-effort',
  'pending',
  'blocked',
];

/** Which code a block reports when several outputs block, most specific first. */
const BLOCK_PRIORITY: readonly ErrorCode[] = [
  'OUTPUT_SINK_REVOKED',
  'OUTPUT_SINK_TAMPERED',
  'OUTPUT_PROTECTION_UNMET',
  'OUTPUT_CANNOT_ENGAGE',
  'OUTPUT_RENEGOTIATION_FAILED',
];

function ok(
  side: CheckSide,
  level: ProtectionLevel,
  mechanism: Mechanism | 'none',
  verdict: Exclude<OutputVerdictKind, 'blocked'>,
  reason: string,
  engage?: EngageRequest,
): Outcome {
  return { result: { side, level, mechanism, verdict, reason }, ...(engage ? { engage } : {}) };
}

function blocked(
  side: CheckSide,
  level: ProtectionLevel,
  mechanism: Mechanism | 'none',
  code: ErrorCode,
  reason: string,
): Outcome {
  return { result: { side, level, mechanism, verdict: 'blocked', code, reason } };
}

const SIDE_WORDS: Readonly<Record<CheckSide, string>> = {
  'digital-video': 'digital video',
  'analog-video': 'analog video',
  'digital-audio': 'digital audio',
  capture: 'video',
};

/** A side with no mechanism (VGA, DVI-A, the DVI-I analog side, SPI/USB/Unknown, audio). */
function checkNone(side: CheckSide, level: ProtectionLevel, c: OutputConnectorState): Outcome {
  const what = SIDE_WORDS[side];
  switch (level) {
    case 'unrestricted':
      return ok(side, level, 'none', 'unrestricted', `${what}: no protection required`);
    case 'best-effort':
      return ok(
        side,
        level,
        'none',
        'best-effort',
        `best effort: ${c.type} has no ${what} protection mechanism; nothing to try, plays unprotected`,
      );
    case 'restricted':
      return blocked(
        side,
        level,
        'none',
        'OUTPUT_PROTECTION_UNMET',
        `${what} must be protected, and ${c.type} has no protection mechanism`,
      );
    case 'disallow':
      return blocked(
        side,
        level,
        'none',
        'OUTPUT_PROTECTION_UNMET',
        `${what} is not allowed on an active ${c.type} output`,
      );
  }
}

function checkHdcp(level: ProtectionLevel, c: OutputConnectorState, ctx: Ctx): Outcome {
  const side: CheckSide = 'digital-video';
  if (level === 'unrestricted' || level === 'disallow') {
    const r = checkNone(side, level, c);
    return { result: { ...r.result, mechanism: 'hdcp' } };
  }
  const type = ctx.levels.contentType;
  const engage: EngageRequest = {
    connectorId: c.id,
    connector: c.name,
    mechanism: 'hdcp',
    contentType: type,
  };
  const a = c.attempt?.mechanism === 'hdcp' ? c.attempt : undefined;
  const cp = c.contentProtection;
  if (level === 'best-effort') {
    if (cp === 'enabled') return ok(side, level, 'hdcp', 'protected', 'HDCP enabled');
    if (cp === 'unsupported')
      return ok(
        side,
        level,
        'hdcp',
        'best-effort',
        'best effort: the driver exposes no HDCP property; nothing to try, plays unprotected',
      );
    if (a?.state === 'failed')
      return ok(
        side,
        level,
        'hdcp',
        'best-effort',
        `best effort: HDCP was tried and failed${a.reason ? ` (${a.reason})` : ''}; plays unprotected`,
      );
    if (a?.state === 'requested' || cp === 'desired')
      return ok(
        side,
        level,
        'hdcp',
        'best-effort',
        'best effort: HDCP requested, not yet enabled; plays meanwhile',
      );
    if (!ctx.master)
      return ok(
        side,
        level,
        'hdcp',
        'best-effort',
        'best effort: not DRM master, HDCP cannot be requested; plays unprotected',
      );
    return ok(side, level, 'hdcp', 'pending', 'best effort: HDCP must be tried first', engage);
  }
  // Restricted.
  const hdcp = ctx.levels.hdcp;
  if (hdcp?.proof === 'unprovable')
    return blocked(side, level, 'hdcp', 'OUTPUT_PROTECTION_UNMET', hdcp.note);
  if (c.sink === 'revoked')
    return blocked(
      side,
      level,
      'hdcp',
      'OUTPUT_SINK_REVOKED',
      'the sink is on the HDCP revocation list',
    );
  if (c.sink === 'tampered')
    return blocked(
      side,
      level,
      'hdcp',
      'OUTPUT_SINK_TAMPERED',
      'the sink failed its HDCP integrity check',
    );
  if (cp === 'unsupported')
    return blocked(
      side,
      level,
      'hdcp',
      'OUTPUT_CANNOT_ENGAGE',
      'HDCP is required and the driver exposes no HDCP ("Content Protection") property',
    );
  if (type === 1 && c.hdcpContentType === 'unsupported')
    return blocked(
      side,
      level,
      'hdcp',
      'OUTPUT_CANNOT_ENGAGE',
      'HDCP content type 1 is required and the driver exposes no "HDCP Content Type" property',
    );
  const typeOk = type === 0 || c.hdcpContentType === 'type1';
  const want = type === 1 ? 'HDCP type 1' : 'HDCP';
  if (cp === 'enabled' && typeOk) return ok(side, level, 'hdcp', 'protected', `${want} enabled`);
  const matches = a !== undefined && (a.contentType ?? type) >= type;
  if (matches && a.state === 'failed')
    return blocked(
      side,
      level,
      'hdcp',
      a.code ?? 'OUTPUT_RENEGOTIATION_FAILED',
      `${want} was requested and failed${a.reason ? `: ${a.reason}` : ''}`,
    );
  if ((matches && a.state === 'requested') || (cp === 'desired' && typeOk))
    return ok(side, level, 'hdcp', 'pending', `${want} requested; waiting for it to be enabled`);
  if (!ctx.master)
    return blocked(
      side,
      level,
      'hdcp',
      'OUTPUT_CANNOT_ENGAGE',
      `${want} is required and cannot be requested without DRM master`,
    );
  return ok(side, level, 'hdcp', 'pending', `${want} is required; request it`, engage);
}

function checkCgmsA(level: ProtectionLevel, c: OutputConnectorState, ctx: Ctx): Outcome {
  const side: CheckSide = 'analog-video';
  if (level === 'unrestricted' || level === 'disallow') {
    const r = checkNone(side, level, c);
    return { result: { ...r.result, mechanism: 'cgms-a' } };
  }
  const value = ctx.levels.cgmsA;
  const engage: EngageRequest = {
    connectorId: c.id,
    connector: c.name,
    mechanism: 'cgms-a',
    value,
  };
  const a = c.attempt?.mechanism === 'cgms-a' ? c.attempt : undefined;
  const matches = a !== undefined && (a.cgmsA === undefined || a.cgmsA === value);
  if (matches && a.state === 'requested')
    return ok(side, level, 'cgms-a', 'protected', `CGMS-A ${value} asserted`);
  if (level === 'best-effort') {
    if (!c.cgmsA)
      return ok(
        side,
        level,
        'cgms-a',
        'best-effort',
        'best effort: the driver exposes no CGMS-A property; nothing to try, plays unprotected',
      );
    if (matches && a.state === 'failed')
      return ok(
        side,
        level,
        'cgms-a',
        'best-effort',
        `best effort: CGMS-A was tried and failed${a.reason ? ` (${a.reason})` : ''}; plays unprotected`,
      );
    if (!ctx.master)
      return ok(
        side,
        level,
        'cgms-a',
        'best-effort',
        'best effort: not DRM master, CGMS-A cannot be asserted; plays unprotected',
      );
    return ok(side, level, 'cgms-a', 'pending', 'best effort: CGMS-A must be tried first', engage);
  }
  // Restricted.
  if (!c.cgmsA)
    return blocked(
      side,
      level,
      'cgms-a',
      'OUTPUT_CANNOT_ENGAGE',
      'CGMS-A is required and the driver exposes no CGMS-A property',
    );
  if (matches && a.state === 'failed')
    return blocked(
      side,
      level,
      'cgms-a',
      a.code ?? 'OUTPUT_CANNOT_ENGAGE',
      `CGMS-A was requested and failed${a.reason ? `: ${a.reason}` : ''}`,
    );
  if (!ctx.master)
    return blocked(
      side,
      level,
      'cgms-a',
      'OUTPUT_CANNOT_ENGAGE',
      'CGMS-A is required and cannot be asserted without DRM master',
    );
  return ok(side, level, 'cgms-a', 'pending', `CGMS-A ${value} is required; assert it`, engage);
}

/** Every check one active connector gets for the track's levels. */
function checkConnector(c: OutputConnectorState, ctx: Ctx): Outcome[] {
  const p = profileOf(c.type);
  const L = ctx.levels;
  if (p.class === 'internal') {
    const level = stricter(L.digitalVideo, L.analogVideo);
    return [
      ok(
        'digital-video',
        level,
        'none',
        'exempt',
        'built-in panel: not a tappable output, no protection needed',
      ),
    ];
  }
  if (p.class === 'capture') {
    const level = stricter(L.digitalVideo, L.analogVideo);
    if (level === 'unrestricted')
      return [ok('capture', level, 'none', 'unrestricted', 'video: no protection required')];
    return [
      blocked(
        'capture',
        level,
        'none',
        'OUTPUT_PROTECTION_UNMET',
        `${c.type} is a capture path with no protection mechanism; the license asks more than Unrestricted`,
      ),
    ];
  }
  const out: Outcome[] = [];
  if (p.digitalVideo)
    out.push(
      p.digitalMechanism === 'hdcp'
        ? checkHdcp(L.digitalVideo, c, ctx)
        : checkNone('digital-video', L.digitalVideo, c),
    );
  if (p.analogVideo && analogSideLive(c))
    out.push(
      p.analogMechanism === 'cgms-a'
        ? checkCgmsA(L.analogVideo, c, ctx)
        : checkNone('analog-video', L.analogVideo, c),
    );
  if (p.digitalAudio) out.push(checkNone('digital-audio', L.digitalAudio, c));
  return out;
}

function worst(results: readonly OutputCheckResult[]): OutputCheckResult | undefined {
  let w: OutputCheckResult | undefined;
  for (const r of results)
    if (!w || VERDICT_ORDER.indexOf(r.verdict) > VERDICT_ORDER.indexOf(w.verdict)) w = r;
  return w;
}

function perOutput(
  c: OutputConnectorState,
  results: readonly OutputCheckResult[],
): PerOutputDecision {
  const p = profileOf(c.type);
  const w = worst(results);
  return {
    connectorId: c.id,
    name: c.name,
    type: c.type,
    class: p.class,
    mechanism: w?.mechanism ?? 'none',
    level: w?.level ?? 'unrestricted',
    verdict: w?.verdict ?? 'unrestricted',
    ...(w?.code ? { code: w.code } : {}),
    reason: w?.reason ?? 'nothing this track carries is governed on this output',
    checks: results,
  };
}

function exceeds(size: { width: number; height: number }, max: Resolution): boolean {
  return (
    (max.width !== undefined && size.width > max.width) ||
    (max.height !== undefined && size.height > max.height)
  );
}

function resolutionText(r: Resolution): string {
  return `${r.width ?? 'any'}x${r.height ?? 'any'}`;
}

/**
 * Whether the picture must be downscaled: with a known content size, when it exceeds the cap;
 * otherwise when an active output's mode exceeds it, or is not known.
 */
function needsDownscale(
  max: Resolution,
  active: readonly OutputConnectorState[] | undefined,
  options: DecideOptions,
): boolean {
  if (options.content) return exceeds(options.content, max);
  if (!active) return true;
  return active.some((c) => c.mode === null || exceeds(c.mode, max));
}

/** The most demanding level among the track's rules. */
function topLevel(L: EffectiveLevels): ProtectionLevel {
  return stricter(stricter(L.digitalVideo, L.analogVideo), L.digitalAudio);
}

function requirementNotes(req: OutputRequirements, track: Track): string[] {
  const notes: string[] = [];
  if (track !== 'audio' && req.hdcp) notes.push(req.hdcp.note);
  if (track !== 'audio' && req.opl.compressedDigitalVideo)
    notes.push(
      `compressed_digital_video_opl ${req.opl.compressedDigitalVideo}: satisfied by construction (no output carries compressed video)`,
    );
  return notes;
}

/**
 * Decides whether the keys of one track type may be used on the current outputs.
 *
 * - Every active output must conform; inactive and disconnected connectors are ignored. The
 *   least protective output decides: any block blocks, else any pending makes it pending.
 * - Best Effort is pending until every output has been tried (requested, failed, or nothing
 *   to try), then plays whether or not protection came up.
 * - Restricted needs the mechanism engaged (HDCP Enabled, with content type 1 when required;
 *   CGMS-A asserted).
 * - An unknown state allows a license that asks at most Best Effort, else blocks 6036.
 * - A picture cap (max_width/max_height) makes the action 'downscale' when the content (or,
 *   without a content size, an active mode) exceeds it.
 *
 * Codes: 6030 no mechanism on the output, or Disallow; 6033/6034 sink revoked/tampered;
 * 6037 the mechanism cannot be requested (no DRM master, no driver property); 6032 HDCP was
 * requested and failed; 6036 state unknown.
 */
export function decideOutput(
  req: OutputRequirements,
  state: OutputState,
  track: Track,
  options: DecideOptions = {},
): OutputDecision {
  const L = effectiveLevels(req, track);
  const notes = requirementNotes(req, track);
  const cap = track !== 'audio' ? req.maxResolution : undefined;

  if (!state.known) {
    const top = topLevel(L);
    if (demandsMore(top, 'best-effort')) {
      return {
        track,
        action: 'block',
        error: kwError(
          'OUTPUT_STATUS_UNKNOWN',
          `the output state cannot be read (${state.reason}) and the license requires ${top} protection`,
          { track, reason: state.reason, level: top },
        ),
        engage: [],
        outputs: [],
        notes,
      };
    }
    notes.push(
      `output state unknown (${state.reason}); allowed: the license asks at most best effort`,
    );
    return {
      track,
      action: cap && needsDownscale(cap, undefined, options) ? 'downscale' : 'allow',
      engage: [],
      ...(cap ? { maxResolution: cap } : {}),
      outputs: [],
      notes,
    };
  }

  const ctx: Ctx = { master: state.master, levels: L };
  const active = state.connectors.filter(isActive);
  const ignored = state.connectors.filter((c) => !isActive(c)).map((c) => c.name);
  if (ignored.length) notes.push(`inactive outputs ignored: ${ignored.join(', ')}`);
  if (!active.length) notes.push('no active output');

  const outputs: PerOutputDecision[] = [];
  const engage: EngageRequest[] = [];
  for (const c of active) {
    const outcomes = checkConnector(c, ctx);
    for (const o of outcomes) if (o.engage) addEngage(engage, o.engage);
    const d = perOutput(
      c,
      outcomes.map((o) => o.result),
    );
    outputs.push(d);
    for (const r of d.checks) if (r.verdict === 'best-effort') notes.push(`${c.name}: ${r.reason}`);
  }

  const blocks = outputs.flatMap((o) =>
    o.checks.filter((r) => r.verdict === 'blocked').map((r) => ({ o, r })),
  );
  if (blocks.length) {
    const code =
      BLOCK_PRIORITY.find((k) => blocks.some((b) => b.r.code === k)) ?? blocks[0]!.r.code!;
    const first = blocks.find((b) => b.r.code === code)!;
    return {
      track,
      action: 'block',
      error: blockError(code, first.o.name, first.r.reason, track, blocks),
      engage: [],
      outputs,
      notes,
    };
  }

  const pending = outputs.some((o) => o.verdict === 'pending');
  let action: OutputAction;
  if (pending) action = 'pending';
  else if (cap && needsDownscale(cap, active, options)) action = 'downscale';
  else if (outputs.some((o) => o.checks.some((r) => r.verdict === 'protected')))
    action = 'allow-protected';
  else action = 'allow';
  if (action === 'downscale' && cap)
    notes.push(`picture capped at ${resolutionText(cap)} (max_width/max_height)`);
  return {
    track,
    action,
    engage: pending ? engage : [],
    ...(cap ? { maxResolution: cap } : {}),
    outputs,
    notes,
  };
}

function addEngage(list: EngageRequest[], e: EngageRequest): void {
  const i = list.findIndex((x) => x.connectorId === e.connectorId && x.mechanism === e.mechanism);
  if (i < 0) list.push(e);
  else if (e.mechanism === 'hdcp' && list[i]!.mechanism === 'hdcp') {
    const prev = list[i] as Extract<EngageRequest, { mechanism: 'hdcp' }>;
    if (e.contentType > prev.contentType) list[i] = e;
  }
}

function blockError(
  code: ErrorCode,
  name: string,
  reason: string,
  track: Track,
  blocks: readonly { o: PerOutputDecision; r: OutputCheckResult }[],
): KeywardenError {
  const others = new Set(blocks.map((b) => b.o.name));
  others.delete(name);
  const more = others.size ? ` (also blocking: ${[...others].join(', ')})` : '';
  return kwError(code, `${name}: ${reason}${more}`, {
    track,
    outputs: blocks.map((b) => ({
      name: b.o.name,
      type: b.o.type,
      side: b.r.side,
      level: b.r.level,
      code: b.r.code,
      reason: b.r.reason,
    })),
  });
}

/**
 * The track type of a key (proto `KeyContainer.TrackType`); UNSPECIFIED and values this
 * agent does not know are 'unknown'.
 */
export function trackOf(t: keywarden.v1.KeyContainer.TrackType | number | null | undefined): Track {
  switch (t ?? 0) {
    case 1:
      return 'audio';
    case 2:
    case 3:
    case 4:
      return 'video';
    default:
      return 'unknown';
  }
}

/**
 * The distinct track types of a license's keys, in video, audio, unknown order; ['unknown']
 * when it has no keys.
 */
export function tracksOf(license: keywarden.v1.ILicense): Track[] {
  const set = new Set((license.keys ?? []).map((k) => trackOf(k.trackType)));
  const out = (['video', 'audio', 'unknown'] as const).filter((t) => set.has(t));
  return out.length ? out : ['unknown'];
}

/** A verdict in the shape the policy engine's output input takes (src/agent/policy OutputCheck). */
export interface OutputVerdictCheck {
  /** 'allowed', 'restricted' (blocked), or 'unknown' (pending). */
  readonly verdict: 'allowed' | 'restricted' | 'unknown';
  /** The coded error of a block. */
  readonly error?: KeywardenError;
}

const ACTION_ORDER: readonly OutputAction[] = [
  'allow',
  'allow-protected',
  'downscale',
  'pending',
  'block',
];

/**
 * The policy engine's verdict for one or more decisions (e.g. one per track of a license):
 * the worst action decides. allow, allow-protected and downscale are 'allowed' (the player
 * applies the cap), pending is 'unknown' (status-pending), block is 'restricted' with the
 * decision's error. No decision at all is 'allowed'.
 */
export function toOutputCheck(...decisions: readonly OutputDecision[]): OutputVerdictCheck {
  let w: OutputDecision | undefined;
  for (const d of decisions)
    if (!w || ACTION_ORDER.indexOf(d.action) > ACTION_ORDER.indexOf(w.action)) w = d;
  if (!w || w.action === 'allow' || w.action === 'allow-protected' || w.action === 'downscale')
    return { verdict: 'allowed' };
  if (w.action === 'pending') return { verdict: 'unknown' };
  return { verdict: 'restricted', ...(w.error ? { error: w.error } : {}) };
}
