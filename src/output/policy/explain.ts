/**
 * Human-facing views of the policy for the CLI: what each requirement of a license decides
 * on its own, and a decision as text.
 */
import type {
  DecideOptions,
  ExplainRow,
  HdcpRequirement,
  OplKind,
  OutputDecision,
  OutputRequirements,
  OutputState,
  ProtectionLevel,
  RequirementName,
  Track,
} from '../types.js';
import { decideOutput } from './decide.js';
import { hdcpRequirementOf, NO_REQUIREMENTS, oplRowOf, stricter } from './levels.js';

interface Alone {
  readonly requirement: RequirementName;
  readonly set: boolean;
  readonly value: string;
  readonly track: Track;
  readonly meaning: string;
  readonly only: Partial<OutputRequirements>;
  readonly level?: ProtectionLevel;
}

function oplAlone(
  requirement: RequirementName,
  kind: OplKind,
  value: number,
  track: Track,
  only: (level: ProtectionLevel) => Partial<OutputRequirements>,
): Alone {
  const row = oplRowOf(kind, value);
  return {
    requirement,
    set: value !== 0,
    value: String(value),
    track,
    level: row.level,
    meaning: `${row.values}: ${row.meaning}`,
    only: only(row.level),
  };
}

/**
 * One row per output requirement of the license (set or not), with what that requirement
 * alone decides on `state` for the track it governs. Video rows are decided for 'video',
 * audio rows for 'audio'.
 */
export function explainLicense(
  req: OutputRequirements,
  state: OutputState,
  options: DecideOptions = {},
): ExplainRow[] {
  const o = req.opl;
  const rows: Alone[] = [
    oplAlone('analog_video_opl', 'analog-video', o.analogVideo, 'video', (analogVideo) => ({
      analogVideo,
    })),
    oplAlone(
      'uncompressed_digital_video_opl',
      'uncompressed-digital-video',
      o.uncompressedDigitalVideo,
      'video',
      (digitalVideo) => ({ digitalVideo }),
    ),
    oplAlone(
      'compressed_digital_video_opl',
      'compressed-digital-video',
      o.compressedDigitalVideo,
      'video',
      () => ({}),
    ),
    oplAlone(
      'compressed_digital_audio_opl',
      'compressed-digital-audio',
      o.compressedDigitalAudio,
      'audio',
      (digitalAudio) => ({ digitalAudio }),
    ),
    oplAlone(
      'uncompressed_digital_audio_opl',
      'uncompressed-digital-audio',
      o.uncompressedDigitalAudio,
      'audio',
      (digitalAudio) => ({ digitalAudio }),
    ),
    hdcpAlone('hdcp_version', hdcpRequirementOf(req.hdcp?.version, false), req.hdcp?.version ?? ''),
    hdcpAlone('hdcp_type1', hdcpRequirementOf('', req.hdcpType1), String(req.hdcpType1)),
    {
      requirement: 'cgms_a',
      set: req.cgmsA !== undefined,
      value: req.cgmsA ?? 'unset',
      track: 'video',
      meaning: req.cgmsA
        ? `CGMS-A ${req.cgmsA} must be asserted on analog outputs`
        : 'no explicit CGMS-A',
      only: req.cgmsA ? { cgmsA: req.cgmsA } : {},
    },
    {
      requirement: 'disable_analog_output',
      set: req.disableAnalogOutput,
      value: String(req.disableAnalogOutput),
      track: 'video',
      meaning: req.disableAnalogOutput
        ? 'no active analog video output'
        : 'analog outputs allowed (by this field)',
      only: { disableAnalogOutput: req.disableAnalogOutput },
    },
    {
      requirement: 'max_resolution',
      set: req.maxResolution !== undefined,
      value: req.maxResolution
        ? `${req.maxResolution.width ?? 'any'}x${req.maxResolution.height ?? 'any'}`
        : 'unlimited',
      track: 'video',
      meaning: req.maxResolution
        ? 'decoded picture at most this size: downscale when the content or an output mode exceeds it'
        : 'no picture cap',
      only: req.maxResolution ? { maxResolution: req.maxResolution } : {},
    },
  ];
  return rows.map((r) => {
    const d = decideOutput({ ...NO_REQUIREMENTS, ...r.only }, state, r.track, options);
    return {
      requirement: r.requirement,
      set: r.set,
      value: r.value,
      ...(r.level ? { level: r.level } : {}),
      track: r.track,
      meaning: r.meaning,
      action: d.action,
      ...(d.error ? { code: d.error.code } : {}),
    };
  });
}

function hdcpAlone(
  requirement: RequirementName,
  hdcp: HdcpRequirement | undefined,
  value: string,
): Alone {
  return {
    requirement,
    set: hdcp !== undefined,
    value,
    track: 'video',
    meaning: hdcp ? hdcp.note : 'no explicit HDCP requirement',
    only: hdcp ? { hdcp } : {},
  };
}

/** A decision as text: the action and code, the requests, the cap, each output and the notes. */
export function describeDecision(d: OutputDecision): string {
  const lines: string[] = [];
  lines.push(
    `${d.track}: ${d.action}` +
      (d.error ? ` — error ${d.error.number} ${d.error.code}: ${d.error.message}` : ''),
  );
  for (const e of d.engage)
    lines.push(
      e.mechanism === 'hdcp'
        ? `  engage: HDCP type ${e.contentType} on ${e.connector}`
        : `  engage: CGMS-A ${e.value} on ${e.connector}`,
    );
  if (d.maxResolution)
    lines.push(
      `  max resolution: ${d.maxResolution.width ?? 'any'}x${d.maxResolution.height ?? 'any'}`,
    );
  for (const o of d.outputs)
    lines.push(
      `  ${o.name} [${o.class}, ${o.mechanism}] ${o.level}: ${o.verdict}` +
        (o.code ? ` (${o.code})` : '') +
        ` — ${o.reason}`,
    );
  for (const n of d.notes) lines.push(`  note: ${n}`);
  return lines.join('\n');
}

/** The most demanding level a license's OPL tables ask of any output, for summaries. */
export function strictestLevel(req: OutputRequirements): ProtectionLevel {
  return stricter(stricter(req.analogVideo, req.digitalVideo), req.digitalAudio);
}
