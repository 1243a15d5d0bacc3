/**
 * Shared fixtures for the output-policy unit tests: connector and output-state builders and
 * license shorthands.
 */
import { requirementsOf } from '../../../src/output/policy/index.js';
import type {
  KmsConnectorType,
  OutputConnectorState,
  OutputState,
} from '../../../src/output/types.js';
import type { keywarden } from '../../../src/protocol/generated/proto.js';

export const HDCP_TYPES = new Set(['HDMI-A', 'HDMI-B', 'DP', 'DVI-D', 'DVI-I']);
export const CGMS_TYPES = new Set(['Composite', 'SVIDEO', 'Component', 'TV', '9PinDIN']);

function connector(
  type: KmsConnectorType,
  identity: Pick<OutputConnectorState, 'id' | 'name' | 'crtcId'>,
  over: Partial<OutputConnectorState>,
): OutputConnectorState {
  const hdcp = HDCP_TYPES.has(type);
  return {
    id: identity.id,
    name: identity.name,
    type,
    typeIndex: 1,
    connection: 'connected',
    active: true,
    crtcId: identity.crtcId,
    mode: { width: 1920, height: 1080, refresh: 60 },
    contentProtection: hdcp ? 'undesired' : 'unsupported',
    hdcpContentType: hdcp ? 'type0' : 'unsupported',
    sink: 'unknown',
    cgmsA: CGMS_TYPES.has(type),
    ...over,
  };
}

let nextId = 1;

/**
 * A fresh active connector: HDCP off, CGMS-A capable on CGMS-A types, nothing requested.
 * Each call takes the next id (per test file), named `${type}-${id}` on CRTC 40 + id.
 */
export function conn(
  type: KmsConnectorType,
  over: Partial<OutputConnectorState> = {},
): OutputConnectorState {
  const id = nextId++;
  return connector(type, { id, name: `${type}-${id}`, crtcId: 40 + id }, over);
}

/** As {@link conn}, but always id 100, named `${type}-1` on CRTC 40. */
export function fixedConn(
  type: KmsConnectorType,
  over: Partial<OutputConnectorState> = {},
): OutputConnectorState {
  return connector(type, { id: 100, name: `${type}-1`, crtcId: 40 }, over);
}

/** A known output state with these connectors, this process being DRM master. */
export function state(...connectors: OutputConnectorState[]): OutputState {
  return { known: true, connectors, master: true };
}

/** As {@link state}, but this process is not DRM master. */
export function notMaster(...connectors: OutputConnectorState[]): OutputState {
  return { known: true, connectors, master: false };
}

/** A playable license carrying this output protection (and any further policy fields). */
export function lic(
  op: keywarden.v1.IOutputProtection,
  policy: keywarden.v1.IPolicy = {},
): keywarden.v1.ILicense {
  return { policy: { canPlay: true, outputProtection: op, ...policy } };
}

/** The output requirements of {@link lic}. */
export function req(op: keywarden.v1.IOutputProtection, policy: keywarden.v1.IPolicy = {}) {
  return requirementsOf(lic(op, policy));
}
