/**
 * Connector type → output class and protection mechanism (docs/output-protection.md
 * "Mechanisms"), and the mapping of the output state to the license request's client info.
 */
import { keywarden } from '../../protocol/generated/proto.js';
import type {
  KmsConnectorType,
  Mechanism,
  OutputClass,
  OutputConnectorState,
  OutputState,
} from '../types.js';

/** What a connector type carries and which mechanism protects it. */
export interface ConnectorProfile {
  /** How the policy classes the connector. */
  readonly class: OutputClass;
  /** It can carry uncompressed digital video to an external sink. */
  readonly digitalVideo: boolean;
  /** It can carry analog video. */
  readonly analogVideo: boolean;
  /** It carries digital audio (HDMI, DisplayPort; an Unknown connector may). */
  readonly digitalAudio: boolean;
  /** Mechanism protecting its digital side; null = none. */
  readonly digitalMechanism: Extract<Mechanism, 'hdcp'> | null;
  /** Mechanism protecting its analog side; null = none. */
  readonly analogMechanism: Extract<Mechanism, 'cgms-a'> | null;
  /** The proto ConnectorType reported in ClientInfo.outputs. */
  readonly protoType: keywarden.v1.ConnectorType;
}

const T = keywarden.v1.ConnectorType;

function digital(hdcp: boolean, audio: boolean, protoType: keywarden.v1.ConnectorType) {
  return {
    class: 'digital',
    digitalVideo: true,
    analogVideo: false,
    digitalAudio: audio,
    digitalMechanism: hdcp ? 'hdcp' : null,
    analogMechanism: null,
    protoType,
  } as const;
}

function analog(cgmsA: boolean, protoType: keywarden.v1.ConnectorType) {
  return {
    class: 'analog',
    digitalVideo: false,
    analogVideo: true,
    digitalAudio: false,
    digitalMechanism: null,
    analogMechanism: cgmsA ? 'cgms-a' : null,
    protoType,
  } as const;
}

const INTERNAL = {
  class: 'internal',
  digitalVideo: false,
  analogVideo: false,
  digitalAudio: false,
  digitalMechanism: null,
  analogMechanism: null,
  protoType: T.CONNECTOR_TYPE_INTERNAL,
} as const;

const CAPTURE = {
  class: 'capture',
  digitalVideo: true,
  analogVideo: false,
  digitalAudio: false,
  digitalMechanism: null,
  analogMechanism: null,
  protoType: T.CONNECTOR_TYPE_UNSPECIFIED,
} as const;

/**
 * Every KMS connector type's profile.
 * - HDMI-A/B, DisplayPort: digital, HDCP (DPCP is not exposed by KMS), carry audio.
 * - DVI-D: digital, HDCP, no audio. DVI-I: digital with HDCP, and also analog with no
 *   mechanism; the analog side is assumed live unless HDCP is Enabled (KMS binds one encoder
 *   to a connector, so an authenticated HDCP link proves the digital encoder drives it).
 * - Composite, S-Video, Component, TV, 9-pin DIN: analog, CGMS-A. VGA, DVI-A: analog, none.
 * - eDP, LVDS, DSI, DPI: built-in panels, not a tappable output: exempt.
 * - Writeback, Virtual: capture paths: no mechanism, anything above Unrestricted blocks.
 * - SPI, USB: external digital panels with no mechanism. Unknown: could be anything, so
 *   every table applies (digital, analog, audio) with no mechanism.
 */
export const CONNECTOR_PROFILES: Readonly<Record<KmsConnectorType, ConnectorProfile>> = {
  'HDMI-A': digital(true, true, T.CONNECTOR_TYPE_HDMI),
  'HDMI-B': digital(true, true, T.CONNECTOR_TYPE_HDMI),
  DP: digital(true, true, T.CONNECTOR_TYPE_DISPLAYPORT),
  'DVI-D': digital(true, false, T.CONNECTOR_TYPE_DVI_D),
  'DVI-I': { ...digital(true, false, T.CONNECTOR_TYPE_DVI_D), analogVideo: true },
  'DVI-A': analog(false, T.CONNECTOR_TYPE_DVI_A),
  VGA: analog(false, T.CONNECTOR_TYPE_VGA),
  Composite: analog(true, T.CONNECTOR_TYPE_COMPOSITE),
  SVIDEO: analog(true, T.CONNECTOR_TYPE_SVIDEO),
  '9PinDIN': analog(true, T.CONNECTOR_TYPE_SVIDEO),
  Component: analog(true, T.CONNECTOR_TYPE_COMPONENT),
  TV: analog(true, T.CONNECTOR_TYPE_UNSPECIFIED),
  eDP: INTERNAL,
  LVDS: INTERNAL,
  DSI: INTERNAL,
  DPI: INTERNAL,
  Writeback: CAPTURE,
  Virtual: CAPTURE,
  SPI: { ...digital(false, false, T.CONNECTOR_TYPE_UNSPECIFIED), class: 'none' },
  USB: { ...digital(false, false, T.CONNECTOR_TYPE_UNSPECIFIED), class: 'none' },
  Unknown: {
    ...digital(false, true, T.CONNECTOR_TYPE_UNSPECIFIED),
    class: 'none',
    analogVideo: true,
  },
};

/** The profile of a connector type; a type this agent does not know gets Unknown's. */
export function profileOf(type: KmsConnectorType | string): ConnectorProfile {
  return CONNECTOR_PROFILES[type as KmsConnectorType] ?? CONNECTOR_PROFILES.Unknown;
}

/**
 * True when the policy must consider the connector: a CRTC drives it and it is not known to
 * be disconnected ('unknown' connection counts: analog load detection is unreliable).
 */
export function isActive(c: OutputConnectorState): boolean {
  return c.active && c.connection !== 'disconnected';
}

/**
 * True when the DVI-I connector's analog side must be assumed live: always, unless HDCP is
 * Enabled (which proves the digital encoder drives the connector).
 */
export function analogSideLive(c: OutputConnectorState): boolean {
  const p = profileOf(c.type);
  if (!p.analogVideo) return false;
  if (p.digitalVideo && p.digitalMechanism === 'hdcp') return c.contentProtection !== 'enabled';
  return true;
}

const HDCP_STATE: Readonly<Record<OutputConnectorState['contentProtection'], number>> = {
  unsupported: keywarden.v1.HdcpState.HDCP_STATE_UNSUPPORTED,
  undesired: keywarden.v1.HdcpState.HDCP_STATE_OFF,
  desired: keywarden.v1.HdcpState.HDCP_STATE_DESIRED,
  enabled: keywarden.v1.HdcpState.HDCP_STATE_ENABLED,
};

/**
 * One connector as proto `OutputConnector` (ClientInfo.outputs). `hdcp_version` is the lowest
 * version the state proves (KMS reports none): "2.2" when Enabled with content type 1,
 * "1.4" when Enabled otherwise, "" when not Enabled. A DVI-I connector reports DVI_D when
 * HDCP is Enabled and DVI_A otherwise (the least protective side that may be in use).
 */
export function toClientInfoOutput(c: OutputConnectorState): keywarden.v1.IOutputConnector {
  const p = profileOf(c.type);
  const enabled = c.contentProtection === 'enabled';
  const type =
    c.type === 'DVI-I'
      ? analogSideLive(c)
        ? keywarden.v1.ConnectorType.CONNECTOR_TYPE_DVI_A
        : keywarden.v1.ConnectorType.CONNECTOR_TYPE_DVI_D
      : p.protoType;
  return {
    type,
    name: c.name,
    active: isActive(c),
    hdcpState: (HDCP_STATE[c.contentProtection] ??
      keywarden.v1.HdcpState.HDCP_STATE_UNSUPPORTED) as keywarden.v1.HdcpState,
    hdcpVersion: enabled ? (c.hdcpContentType === 'type1' ? '2.2' : '1.4') : '',
    hdcpContentType: c.hdcpContentType === 'type1' ? 1 : 0,
    cgmsACapable: p.analogMechanism === 'cgms-a' && c.cgmsA,
  };
}

/**
 * Every connector (active or not) as proto `OutputConnector`, for ClientInfo.outputs; []
 * when the state is unknown.
 */
export function toClientInfoOutputs(state: OutputState): keywarden.v1.IOutputConnector[] {
  return state.known ? state.connectors.map(toClientInfoOutput) : [];
}
