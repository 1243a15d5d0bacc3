/**
 * Types of the output-protection policy (issue 6, docs/output-protection.md).
 *
 * The connector shape is the native addon's KMS snapshot (src/native/binding.ts), so the
 * output monitor can pass a native connector straight through and add only its engagement
 * bookkeeping ({@link EngageAttempt}).
 */
import type { ErrorCode, KeywardenError } from '../errors/index.js';
import type { KmsConnectorType, NativeKmsConnector } from '../native/binding.js';

/** KMS connector type names (the kernel's; libdrm's `drmModeGetConnectorTypeName`). */
export type { KmsConnectorType };

/** One KMS connector as the native addon reports it. */
export type KmsConnector = NativeKmsConnector;

/** KMS connection status of a connector. */
export type ConnectionStatus = KmsConnector['connection'];

/** The KMS "Content Protection" property ('unsupported' when the connector has none). */
export type ContentProtectionState = KmsConnector['contentProtection'];

/** The KMS "HDCP Content Type" property ('unsupported' when the connector has none). */
export type HdcpContentTypeState = KmsConnector['hdcpContentType'];

/** What the driver knows of the sink's HDCP standing (revocation list, integrity). */
export type SinkState = KmsConnector['sink'];

/** A display mode: width and height in pixels, refresh in Hz. */
export type DisplayMode = NonNullable<KmsConnector['mode']>;

/** A protection mechanism the agent can request on a connector. */
export type Mechanism = 'hdcp' | 'cgms-a';

/** CGMS-A value to assert (proto `OutputProtection.CgmsA`, without UNSET). */
export type CgmsAValue = 'copy-free' | 'copy-once' | 'copy-never';

/** HDCP content type: 0 (any HDCP version) or 1 (HDCP 2.2 and later only). */
export type HdcpContentType = 0 | 1;

/**
 * The output monitor's record of its last protection request on a connector.
 * 'requested' means the request was committed (for CGMS-A, which has no handshake, that is
 * the asserted state); 'failed' means it was refused or timed out.
 */
export interface EngageAttempt {
  /** Mechanism requested. */
  readonly mechanism: Mechanism;
  /** Outcome so far. */
  readonly state: 'requested' | 'failed';
  /** HDCP content type requested (HDCP only). */
  readonly contentType?: HdcpContentType;
  /** CGMS-A value asserted (CGMS-A only). */
  readonly cgmsA?: CgmsAValue;
  /** For a failure: 6037 when the request could not be made, 6032 when HDCP did not come up. */
  readonly code?: 'OUTPUT_CANNOT_ENGAGE' | 'OUTPUT_RENEGOTIATION_FAILED';
  /** Why it failed, for logs. */
  readonly reason?: string;
}

/** A connector as the policy sees it: the native snapshot plus engagement bookkeeping. */
export interface OutputConnectorState extends KmsConnector {
  /** The monitor's last protection request on this connector, if any. */
  readonly attempt?: EngageAttempt;
}

/** The whole output state: the connectors, or why they could not be read. */
export type OutputState =
  | {
      /** The state was read. */
      readonly known: true;
      /** Every connector (active or not). */
      readonly connectors: readonly OutputConnectorState[];
      /** True when the agent holds DRM master (needed to request protection). */
      readonly master: boolean;
    }
  | {
      /** The state could not be read (no KMS device, no libdrm). */
      readonly known: false;
      /** Why. */
      readonly reason: string;
    };

/** What an output protection level asks of an output. */
export type ProtectionLevel = 'unrestricted' | 'best-effort' | 'restricted' | 'disallow';

/** The five OPL fields of proto `OutputProtection`. */
export type OplKind =
  | 'analog-video'
  | 'uncompressed-digital-video'
  | 'compressed-digital-video'
  | 'compressed-digital-audio'
  | 'uncompressed-digital-audio';

/**
 * How the policy treats a connector: an external digital output (HDCP), an external analog
 * output (CGMS-A or nothing), a built-in panel (not tappable), a capture path (writeback,
 * virtual) or an output of unknown nature with no mechanism.
 */
export type OutputClass = 'digital' | 'analog' | 'internal' | 'capture' | 'none';

/** The track type a key decrypts; 'unknown' (TRACK_TYPE_UNSPECIFIED) gets both rule sets. */
export type Track = 'video' | 'audio' | 'unknown';

/** An explicit HDCP requirement and what KMS can prove of it. */
export interface HdcpRequirement {
  /** The version string the license names ('' when only hdcp_type1 is set). */
  readonly version: string;
  /**
   * What satisfies it: 'enabled' (HDCP Enabled, any content type), 'type1' (Enabled with
   * content type 1, which only HDCP 2.2+ can carry), or 'unprovable' (nothing KMS reports
   * can prove it; it blocks).
   */
  readonly proof: 'enabled' | 'type1' | 'unprovable';
  /** How the version was read, for notes. */
  readonly note: string;
}

/** A maximum picture size; an absent dimension is unlimited. */
export interface Resolution {
  /** Maximum width in pixels; absent = unlimited. */
  readonly width?: number;
  /** Maximum height in pixels; absent = unlimited. */
  readonly height?: number;
}

/** The raw OPL values of a license (0 = unset). */
export interface OplValues {
  /** analog_video_opl. */
  readonly analogVideo: number;
  /** uncompressed_digital_video_opl. */
  readonly uncompressedDigitalVideo: number;
  /** compressed_digital_video_opl. */
  readonly compressedDigitalVideo: number;
  /** compressed_digital_audio_opl. */
  readonly compressedDigitalAudio: number;
  /** uncompressed_digital_audio_opl. */
  readonly uncompressedDigitalAudio: number;
}

/** A license's output requirements, as {@link requirementsOf} reads them. */
export interface OutputRequirements {
  /** The raw OPL values. */
  readonly opl: OplValues;
  /** Analog video level from its table (before explicit requirements). */
  readonly analogVideo: ProtectionLevel;
  /** Uncompressed digital video level from its table (before explicit requirements). */
  readonly digitalVideo: ProtectionLevel;
  /** Digital audio level: the stricter of the compressed and uncompressed audio tables. */
  readonly digitalAudio: ProtectionLevel;
  /** Explicit HDCP requirement (hdcp_version and hdcp_type1 combined); absent = none. */
  readonly hdcp?: HdcpRequirement;
  /** The raw hdcp_type1 flag (also folded into `hdcp`). */
  readonly hdcpType1: boolean;
  /** Explicit CGMS-A value to assert on analog outputs; absent = none. */
  readonly cgmsA?: CgmsAValue;
  /** Analog video outputs must be off. */
  readonly disableAnalogOutput: boolean;
  /** Maximum decoded picture size (max_width/max_height); absent = none. */
  readonly maxResolution?: Resolution;
}

/** A protection request the output monitor must make before playback may start. */
export type EngageRequest =
  | {
      /** KMS connector id. */
      readonly connectorId: number;
      /** Connector name, for logs. */
      readonly connector: string;
      /** Request HDCP: set "Content Protection" to Desired with this content type. */
      readonly mechanism: 'hdcp';
      /** HDCP content type to request. */
      readonly contentType: HdcpContentType;
    }
  | {
      /** KMS connector id. */
      readonly connectorId: number;
      /** Connector name, for logs. */
      readonly connector: string;
      /** Assert CGMS-A. */
      readonly mechanism: 'cgms-a';
      /** The CGMS-A value to assert. */
      readonly value: CgmsAValue;
    };

/** The verdict on one requirement on one output, from best to worst. */
export type OutputVerdictKind =
  'exempt' | 'unrestricted' | 'protected' | 'best-effort' | 'pending' | 'blocked';

/** Which requirement a check applies. */
export type CheckSide = 'digital-video' | 'analog-video' | 'digital-audio' | 'capture';

/** One requirement checked on one output. */
export interface OutputCheckResult {
  /** Which requirement. */
  readonly side: CheckSide;
  /** The level in force for it (after explicit requirements). */
  readonly level: ProtectionLevel;
  /** The mechanism that can give it on this output ('none' = no mechanism). */
  readonly mechanism: Mechanism | 'none';
  /** The verdict. */
  readonly verdict: OutputVerdictKind;
  /** The catalogue code when blocked. */
  readonly code?: ErrorCode;
  /** Why, in words. */
  readonly reason: string;
}

/** The verdict on one active output: its worst check. */
export interface PerOutputDecision {
  /** KMS connector id. */
  readonly connectorId: number;
  /** KMS connector name. */
  readonly name: string;
  /** KMS connector type. */
  readonly type: KmsConnectorType;
  /** How the policy classes it. */
  readonly class: OutputClass;
  /** The mechanism of the worst check. */
  readonly mechanism: Mechanism | 'none';
  /** The level of the worst check. */
  readonly level: ProtectionLevel;
  /** The worst verdict. */
  readonly verdict: OutputVerdictKind;
  /** The catalogue code when blocked. */
  readonly code?: ErrorCode;
  /** The reason of the worst check. */
  readonly reason: string;
  /** Every check made on this output. */
  readonly checks: readonly OutputCheckResult[];
}

/** What to do with the keys of one track. */
export type OutputAction = 'allow' | 'allow-protected' | 'downscale' | 'block' | 'pending';

/** The decision for one track type against one output state. */
export interface OutputDecision {
  /** The track the decision is for. */
  readonly track: Track;
  /**
   * 'allow': play. 'allow-protected': play, protection the license asked for is engaged.
   * 'downscale': play at most at `maxResolution`. 'pending': request `engage` and/or wait for
   * HDCP to come up, then decide again. 'block': do not decrypt; `error` says why.
   */
  readonly action: OutputAction;
  /** The coded error of a block. */
  readonly error?: KeywardenError;
  /** Requests to make before playback (non-empty only when pending). */
  readonly engage: readonly EngageRequest[];
  /** The license's picture cap (video tracks, unless blocked); absent = no cap. */
  readonly maxResolution?: Resolution;
  /** One entry per active output. */
  readonly outputs: readonly PerOutputDecision[];
  /** Facts worth logging (inferences, ignored outputs, unknown state). */
  readonly notes: readonly string[];
}

/** Inputs of a decision beyond the requirements and the state. */
export interface DecideOptions {
  /** Decoded picture size of the content, when known (for max_width/max_height). */
  readonly content?: { readonly width: number; readonly height: number };
}

/** A requirement of a license, as {@link explainLicense} lists it. */
export type RequirementName =
  | 'analog_video_opl'
  | 'uncompressed_digital_video_opl'
  | 'compressed_digital_video_opl'
  | 'compressed_digital_audio_opl'
  | 'uncompressed_digital_audio_opl'
  | 'hdcp_version'
  | 'hdcp_type1'
  | 'cgms_a'
  | 'disable_analog_output'
  | 'max_resolution';

/** One row of {@link explainLicense}: a requirement and what it alone decides. */
export interface ExplainRow {
  /** The proto field(s). */
  readonly requirement: RequirementName;
  /** True when the license sets it (non-zero, non-empty). */
  readonly set: boolean;
  /** The value as text ('150', '2.2', 'copy-never', '1280x720'). */
  readonly value: string;
  /** The level it maps to (OPL rows). */
  readonly level?: ProtectionLevel;
  /** The track type it governs. */
  readonly track: Track;
  /** What it asks, in words. */
  readonly meaning: string;
  /** What this requirement alone decides on the given state. */
  readonly action: OutputAction;
  /** The code when it alone blocks. */
  readonly code?: ErrorCode;
}
