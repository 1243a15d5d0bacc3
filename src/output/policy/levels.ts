/**
 * The OPL tables of DESIGN.md "Output protection" and the reading of a license's output
 * requirements (docs/output-protection.md "Levels").
 */
import type { keywarden } from '../../protocol/generated/proto.js';
import type {
  CgmsAValue,
  HdcpRequirement,
  OplKind,
  OplValues,
  OutputRequirements,
  ProtectionLevel,
  Resolution,
} from '../types.js';

/** One row of an OPL table: every value up to `upTo` (inclusive) maps to `level`. */
export interface OplRow {
  /** Inclusive upper bound of the row; null = no bound (the last row). */
  readonly upTo: number | null;
  /** The level. */
  readonly level: ProtectionLevel;
  /** The values the row covers, as text ("101-150"). */
  readonly values: string;
  /** What the level asks, in words. */
  readonly meaning: string;
}

/**
 * The OPL tables. A value between two rows of the brief's table takes the level of the next
 * row up (the conservative reading): analog 120 is Best Effort, digital 260 Restricted,
 * audio 120 Disallow. 0 (unset) is Unrestricted.
 *
 * Compressed digital video has no table in the brief. The agent never emits compressed video
 * on an output (decoded frames go to KMS; there is no passthrough path), so the requirement
 * is satisfied by construction at every value and maps to Unrestricted.
 */
export const OPL_TABLES: Readonly<Record<OplKind, readonly OplRow[]>> = {
  'analog-video': [
    { upTo: 100, level: 'unrestricted', values: '0-100', meaning: 'play on analog outputs' },
    {
      upTo: 150,
      level: 'best-effort',
      values: '101-150',
      meaning: 'try CGMS-A on analog outputs, play anyway',
    },
    {
      upTo: 200,
      level: 'restricted',
      values: '151-200',
      meaning: 'CGMS-A must be asserted on analog outputs',
    },
    { upTo: null, level: 'disallow', values: '>=201', meaning: 'no active analog output' },
  ],
  'uncompressed-digital-video': [
    { upTo: 100, level: 'unrestricted', values: '0-100', meaning: 'play on digital outputs' },
    {
      upTo: 250,
      level: 'best-effort',
      values: '101-250',
      meaning: 'try HDCP on digital outputs, play anyway',
    },
    {
      upTo: 300,
      level: 'restricted',
      values: '251-300',
      meaning: 'HDCP must be enabled on digital outputs',
    },
    { upTo: null, level: 'disallow', values: '>=301', meaning: 'no active digital output' },
  ],
  'compressed-digital-video': [
    {
      upTo: null,
      level: 'unrestricted',
      values: 'any',
      meaning: 'satisfied by construction: no output ever carries compressed video',
    },
  ],
  'compressed-digital-audio': [
    { upTo: 100, level: 'unrestricted', values: '0-100', meaning: 'play on HDMI/DisplayPort' },
    {
      upTo: null,
      level: 'disallow',
      values: '>=101',
      meaning: 'no active output that carries digital audio (HDMI, DisplayPort)',
    },
  ],
  'uncompressed-digital-audio': [
    { upTo: 100, level: 'unrestricted', values: '0-100', meaning: 'play on HDMI/DisplayPort' },
    {
      upTo: null,
      level: 'disallow',
      values: '>=101',
      meaning: 'no active output that carries digital audio (HDMI, DisplayPort)',
    },
  ],
};

/** The levels from least to most demanding. */
export const LEVEL_ORDER: readonly ProtectionLevel[] = [
  'unrestricted',
  'best-effort',
  'restricted',
  'disallow',
];

/**
 * The row of `kind`'s table that `opl` falls in. A value that is not a number ≥ 0 falls in
 * the last row.
 */
export function oplRowOf(kind: OplKind, opl: number | null | undefined): OplRow {
  const rows = OPL_TABLES[kind];
  const last = rows[rows.length - 1]!;
  const v = opl ?? 0;
  if (!Number.isFinite(v) || v < 0) return last;
  return rows.find((r) => r.upTo === null || v <= r.upTo) ?? last;
}

/**
 * The level an OPL value maps to (0 or absent = Unrestricted; between rows = the next row up;
 * a value that is not a number ≥ 0 = the most demanding level of the table).
 */
export function levelOf(kind: OplKind, opl: number | null | undefined): ProtectionLevel {
  return oplRowOf(kind, opl).level;
}

/** The more demanding of two levels. */
export function stricter(a: ProtectionLevel, b: ProtectionLevel): ProtectionLevel {
  return LEVEL_ORDER.indexOf(a) >= LEVEL_ORDER.indexOf(b) ? a : b;
}

/** True when `a` demands more than `b`. */
export function demandsMore(a: ProtectionLevel, b: ProtectionLevel): boolean {
  return LEVEL_ORDER.indexOf(a) > LEVEL_ORDER.indexOf(b);
}

/**
 * Reads an explicit HDCP requirement. KMS cannot report the negotiated HDCP version, only
 * "Enabled" and the content type; content type 1 can only be carried by HDCP 2.2 and later.
 * So: versions below 2 (e.g. "1.4") need Enabled with any content type; "2.0" to "2.3", or
 * hdcp_type1, need Enabled with content type 1 (proving 2.2+; 2.3 cannot be told from 2.2,
 * so 2.3 is accepted as 2.2-class, and says so in a note); anything above 2.3 or unreadable
 * cannot be proven and blocks. Returns undefined when the license asks for neither.
 */
export function hdcpRequirementOf(
  version: string | null | undefined,
  type1: boolean | null | undefined,
): HdcpRequirement | undefined {
  const v = (version ?? '').trim();
  if (!v && !type1) return undefined;
  let proof: HdcpRequirement['proof'] = type1 ? 'type1' : 'enabled';
  let note = type1
    ? 'HDCP content type 1 required: only HDCP 2.2+ carries it; request type 1, require Enabled with type 1'
    : '';
  if (v) {
    const m = /^(\d{1,3})(?:\.(\d{1,3}))?$/.exec(v);
    if (!m) {
      proof = 'unprovable';
      note = `HDCP version "${v}" is not a version number: it cannot be proven`;
    } else {
      const major = Number(m[1]);
      const minor = Number(m[2] ?? 0);
      if (major > 2 || (major === 2 && minor > 3)) {
        proof = 'unprovable';
        note = `HDCP ${v} is newer than any version KMS can prove (content type 1 proves 2.2+)`;
      } else if (major === 2) {
        proof = 'type1';
        note =
          minor === 3
            ? 'HDCP 2.3 required: KMS cannot tell 2.3 from 2.2; accepted as 2.2-class (Enabled with content type 1)'
            : `HDCP ${v} required: KMS reports no version; content type 1 (HDCP 2.2+) proves it`;
      } else if (!type1) {
        note = `HDCP ${v} required: any Enabled HDCP link (KMS drivers implement 1.4 or later)`;
      }
    }
  }
  return { version: v, proof, note };
}

/**
 * The CGMS-A value of proto `OutputProtection.CgmsA`; undefined for UNSET. A value this
 * agent does not know (a newer server) reads as the most restrictive, copy-never.
 */
export function cgmsAValueOf(
  v: keywarden.v1.OutputProtection.CgmsA | number | null | undefined,
): CgmsAValue | undefined {
  switch (v ?? 0) {
    case 0:
      return undefined;
    case 1:
      return 'copy-free';
    case 2:
      return 'copy-once';
    default:
      return 'copy-never';
  }
}

/** The CGMS-A value a table level asserts when the license names none. */
export const DEFAULT_CGMS_A: CgmsAValue = 'copy-never';

/**
 * A license's output requirements: `policy.output_protection` read through the tables, the
 * explicit requirements, and `policy.max_width`/`max_height`. An absent policy or output
 * protection means no requirement.
 */
export function requirementsOf(license: keywarden.v1.ILicense): OutputRequirements {
  const policy = license.policy ?? {};
  const op = policy.outputProtection ?? {};
  const opl: OplValues = {
    analogVideo: op.analogVideoOpl ?? 0,
    uncompressedDigitalVideo: op.uncompressedDigitalVideoOpl ?? 0,
    compressedDigitalVideo: op.compressedDigitalVideoOpl ?? 0,
    compressedDigitalAudio: op.compressedDigitalAudioOpl ?? 0,
    uncompressedDigitalAudio: op.uncompressedDigitalAudioOpl ?? 0,
  };
  const hdcp = hdcpRequirementOf(op.hdcpVersion, op.hdcpType1);
  const cgmsA = cgmsAValueOf(op.cgmsA);
  const maxResolution = resolutionOf(policy.maxWidth, policy.maxHeight);
  return {
    opl,
    analogVideo: levelOf('analog-video', opl.analogVideo),
    digitalVideo: levelOf('uncompressed-digital-video', opl.uncompressedDigitalVideo),
    digitalAudio: stricter(
      levelOf('compressed-digital-audio', opl.compressedDigitalAudio),
      levelOf('uncompressed-digital-audio', opl.uncompressedDigitalAudio),
    ),
    ...(hdcp ? { hdcp } : {}),
    hdcpType1: op.hdcpType1 === true,
    ...(cgmsA ? { cgmsA } : {}),
    disableAnalogOutput: op.disableAnalogOutput === true,
    ...(maxResolution ? { maxResolution } : {}),
  };
}

function resolutionOf(
  w: number | null | undefined,
  h: number | null | undefined,
): Resolution | undefined {
  if (!w && !h) return undefined;
  return { ...(w ? { width: w } : {}), ...(h ? { height: h } : {}) };
}

/** The requirements of a license that asks for nothing. */
export const NO_REQUIREMENTS: OutputRequirements = requirementsOf({});
