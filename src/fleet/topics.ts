/** MQTT topics of the fleet channel, all under a configurable prefix (docs/fleet.md). */

/** The topics one device uses. */
export interface FleetTopics {
  /** Retained, signed RevocationList (fleet publisher → every device). */
  readonly revocations: string;
  /** Signed FleetCommand (fleet publisher → this device). */
  readonly command: string;
  /** Signed CommandAck (this device → head-end). */
  readonly ack: string;
  /** Retained, signed DeviceStatus, or the unsigned {@link OFFLINE_MARKER} (last will). */
  readonly status: string;
}

/**
 * The last-will payload on `{prefix}/devices/{id}/status`: the 7 ASCII bytes `offline`
 * (6f 66 66 6c 69 6e 65), unsigned, retained. The broker publishes it, so it cannot be
 * signed; a head-end must treat it as a hint only. A signed DeviceStatus never equals it.
 */
export const OFFLINE_MARKER: Uint8Array = Uint8Array.from(Buffer.from('offline', 'ascii'));

/** True when `payload` is exactly the {@link OFFLINE_MARKER}. */
export function isOfflineMarker(payload: Uint8Array): boolean {
  return Buffer.from(payload).equals(Buffer.from(OFFLINE_MARKER));
}

const hasBadChar = (s: string): boolean => /[+#]/.test(s) || s.includes(String.fromCharCode(0));

function checkLevel(what: string, value: string): void {
  if (value.length === 0 || value.includes('/') || hasBadChar(value)) {
    throw new RangeError(`${what} "${value}" is not a valid single MQTT topic level`);
  }
}

/** Drops trailing slashes; an empty prefix puts the topics at the root ("fleet/..."). */
function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/\/+$/, '');
  if (hasBadChar(p)) throw new RangeError(`topic prefix "${prefix}" holds a wildcard`);
  return p;
}

function join(prefix: string, rest: string): string {
  return prefix === '' ? rest : `${prefix}/${rest}`;
}

/** The revocation list topic: `{prefix}/fleet/revocations`. */
export function revocationsTopic(prefix: string): string {
  return join(normalizePrefix(prefix), 'fleet/revocations');
}

/** All topics of device `deviceId` under `prefix`. */
export function fleetTopics(prefix: string, deviceId: string): FleetTopics {
  checkLevel('device id', deviceId);
  const p = normalizePrefix(prefix);
  const dev = join(p, `devices/${deviceId}`);
  return {
    revocations: revocationsTopic(p),
    command: `${dev}/cmd`,
    ack: `${dev}/ack`,
    status: `${dev}/status`,
  };
}
