import { kwError } from '../../errors/index.js';
import { parseDuration } from './durations.js';
import { DEFAULT_POLICY, type OutputProtectionLevels, type PolicySpec } from './policy-spec.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Draft = Omit<Mutable<PolicySpec>, 'opl'> & { opl: Mutable<OutputProtectionLevels> };
type Setter = (draft: Draft, value: string) => void;

function bool(value: string, what: string): boolean {
  const v = value.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw kwError('HEADEND_BAD_POLICY', `${what} is true or false, not '${value}'`);
}

function uint(value: string, what: string, max = 0xffff_ffff): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) > max)
    throw kwError('HEADEND_BAD_POLICY', `${what} is a whole number ≤ ${max}, not '${value}'`);
  return Number(value);
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

const SECURITY_LEVELS: Record<string, number> = { any: 0, software: 1, tee: 2, hardware: 3 };
const CGMSA = ['none', 'copy-free', 'copy-once', 'copy-never'];

/** `1920x1080`, `1080p` or `1080` (height only). */
function setResolution(d: Draft, value: string): void {
  const v = value.trim().toLowerCase();
  const wh = /^(\d+)x(\d+)$/.exec(v);
  const h = /^(\d+)p?$/.exec(v);
  if (wh) [d.maxWidth, d.maxHeight] = [Number(wh[1]), Number(wh[2])];
  else if (h) [d.maxWidth, d.maxHeight] = [0, Number(h[1])];
  else if (v === 'none' || v === 'unlimited') [d.maxWidth, d.maxHeight] = [0, 0];
  else throw kwError('HEADEND_BAD_POLICY', `max-resolution is WxH or 1080p, not '${value}'`);
}

function setSecurityLevel(d: Draft, value: string): void {
  const v = value.trim().toLowerCase();
  const n = SECURITY_LEVELS[v] ?? (/^[0-3]$/.test(v) ? Number(v) : undefined);
  if (n === undefined)
    throw kwError('HEADEND_BAD_POLICY', `min-security-level is software, tee or hardware`);
  d.minSecurityLevel = n;
}

function setChain(d: Draft, value: string): void {
  if (value !== 'none' && value !== 'root' && value !== 'leaf')
    throw kwError('HEADEND_BAD_POLICY', `chain is none, root or leaf, not '${value}'`);
  d.chain = value;
}

function setCgmsa(d: Draft, value: string): void {
  if (!CGMSA.includes(value))
    throw kwError('HEADEND_BAD_POLICY', `cgmsa is one of ${CGMSA.join(', ')}`);
  d.cgmsa = value;
}

function setServiceError(d: Draft, value: string): void {
  d.serviceError =
    value === '' || value === 'none'
      ? null
      : { message: value, customData: d.serviceError?.customData ?? '' };
}

function setServiceData(d: Draft, value: string): void {
  d.serviceError = { message: d.serviceError?.message ?? 'service refused', customData: value };
}

const opl =
  (field: keyof OutputProtectionLevels): Setter =>
  (d, v) => {
    d.opl[field] = uint(v, `opl ${field}`, 1000);
  };

/** Every settable field, by its `policy set` option name (kebab-case, without `--`). */
export const POLICY_SETTERS: Readonly<Record<string, Setter>> = {
  'can-play': (d, v) => (d.canPlay = bool(v, 'can-play')),
  'can-persist': (d, v) => (d.canPersist = bool(v, 'can-persist')),
  'can-renew': (d, v) => (d.canRenew = bool(v, 'can-renew')),
  'license-duration': (d, v) => (d.licenseDuration = parseDuration(v)),
  'rental-duration': (d, v) => (d.rentalDuration = parseDuration(v)),
  'playback-duration': (d, v) => (d.playbackDuration = parseDuration(v)),
  'renewal-delay': (d, v) => (d.renewalDelay = parseDuration(v)),
  'renewal-retry': (d, v) => (d.renewalRetryInterval = parseDuration(v)),
  'renewal-recovery': (d, v) => (d.renewalRecoveryDuration = parseDuration(v)),
  'renewal-url': (d, v) => (d.renewalUrl = v),
  'license-custom-data': (d, v) => (d.licenseCustomData = v),
  'opl-analog-video': opl('analogVideo'),
  'opl-compressed-video': opl('compressedDigitalVideo'),
  'opl-uncompressed-video': opl('uncompressedDigitalVideo'),
  'opl-compressed-audio': opl('compressedDigitalAudio'),
  'opl-uncompressed-audio': opl('uncompressedDigitalAudio'),
  hdcp: (d, v) => (d.hdcp = v === 'none' ? '' : v),
  'hdcp-type1': (d, v) => (d.hdcpType1 = bool(v, 'hdcp-type1')),
  'disable-analog': (d, v) => (d.disableAnalog = bool(v, 'disable-analog')),
  cgmsa: setCgmsa,
  'max-resolution': setResolution,
  'min-security-level': setSecurityLevel,
  'allowed-apps': (d, v) => (d.allowedApplications = list(v)),
  'domain-bound': (d, v) => (d.domainBound = bool(v, 'domain-bound')),
  chain: setChain,
  roots: (d, v) => (d.roots = list(v)),
  broadcast: (d, v) => (d.broadcast = bool(v, 'broadcast')),
  'service-error': setServiceError,
  'service-custom-data': setServiceData,
};

/** Applies `changes` (option name → text) to `base`; unknown names are a coded error. */
export function applyPolicyChanges(
  base: PolicySpec,
  changes: Readonly<Record<string, string>>,
): PolicySpec {
  const draft: Draft = structuredClone({ ...base, opl: { ...base.opl } }) as Draft;
  for (const [name, value] of Object.entries(changes)) {
    const set = POLICY_SETTERS[name];
    if (!set) throw kwError('HEADEND_BAD_POLICY', `unknown policy field '${name}'`);
    set(draft, value);
  }
  return validatePolicy(draft);
}

/** Cross-field rules a single option cannot check. */
export function validatePolicy(p: PolicySpec): PolicySpec {
  if (p.chain === 'leaf' && p.roots.length === 0)
    throw kwError('HEADEND_BAD_POLICY', 'a leaf policy names at least one root (--roots)');
  if (p.chain !== 'leaf' && p.roots.length > 0)
    throw kwError('HEADEND_BAD_POLICY', 'only a leaf policy names roots');
  if (p.broadcast && p.chain !== 'root')
    throw kwError('HEADEND_BAD_POLICY', 'broadcast is an option of root policies (--chain root)');
  if (p.hdcpType1 && p.hdcp !== '' && Number(p.hdcp) < 2.2)
    throw kwError('HEADEND_BAD_POLICY', 'HDCP type 1 needs HDCP 2.2 or later');
  return p;
}

/** Parses a stored policy, filling fields added after it was written with their defaults. */
export function parseStoredPolicy(json: string): PolicySpec {
  const raw = JSON.parse(json) as Partial<PolicySpec>;
  return { ...DEFAULT_POLICY, ...raw, opl: { ...DEFAULT_POLICY.opl, ...raw.opl } };
}
