/** Head-end business settings (CLI flags of `keywarden headend`; defaults below). */
export interface HeadendSettings {
  /** Lowest agent version the provisioning authority certifies (semver). */
  readonly minAgentVersion: string;
  /** Where a device gets an update (sent with a version refusal). */
  readonly updateUrl: string;
  /** Provisioning requests allowed per hardware identity per window. */
  readonly provisioningLimit: number;
  /** The rate-limit window, ms. */
  readonly provisioningWindowMs: number;
  /** Validity of device certificates, ms. */
  readonly deviceCertValidityMs: number;
  /** Accepted clock skew of signed requests, ms (the replay window is twice this). */
  readonly maxSkewMs: number;
  /** Domain controller URL sent in domain-required answers. */
  readonly domainServerUrl: string;
  /** Service id sent in domain answers. */
  readonly serviceId: string;
  /** Maximum devices per new domain. */
  readonly defaultMaxDomainDevices: number;
}

/** The defaults: generous enough for a lab, strict enough to show each refusal. */
export const DEFAULT_SETTINGS: HeadendSettings = {
  minAgentVersion: '0.1.0',
  updateUrl: '',
  provisioningLimit: 10,
  provisioningWindowMs: 3600_000,
  deviceCertValidityMs: 5 * 365 * 86400_000,
  maxSkewMs: 5 * 60_000,
  domainServerUrl: 'http://127.0.0.1:8443/v1/domain/join',
  serviceId: 'keywarden-reference',
  defaultMaxDomainDevices: 5,
};

/** Compares two semver strings by major.minor.patch (pre-release tags sort before). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string): number[] => {
    const [core = '', pre] = v.trim().replace(/^v/, '').split('-', 2);
    const nums = core.split('.').map((n) => (/^\d+$/.test(n) ? Number(n) : NaN));
    return [...nums, pre === undefined ? 1 : 0];
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 4; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (Number.isNaN(d)) return -1;
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** True for `MAJOR.MINOR.PATCH` with an optional pre-release tag. */
export function isSemver(v: string): boolean {
  return /^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(v.trim());
}
