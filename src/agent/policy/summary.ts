import { keywarden } from '../../protocol/generated/proto.js';
import { licenseRights, securityLevelName, type LicenseRights } from './rights.js';
import { timeWindows, type TimeWindows } from './windows.js';

const v1 = keywarden.v1;

/** A license's policy in plain JSON-ready form, for listings (`keywarden licenses`). */
export interface PolicySummary {
  /** License id. */
  readonly id: string;
  /** 'streaming', 'offline' or 'unspecified'. */
  readonly type: 'streaming' | 'offline' | 'unspecified';
  /** 'simple', 'root' (subscription) or 'leaf'. */
  readonly kind: 'simple' | 'root' | 'leaf';
  /** Operator content id. */
  readonly contentId: string;
  /** Key ids, lower-case hex. */
  readonly keyIds: readonly string[];
  /** can_play, can_persist (and not STREAMING), can_renew. */
  readonly rights: LicenseRights;
  /** Issue time and the end of each window, ms (absent: no limit). */
  readonly windows: TimeWindows;
  /** Renewal parameters, seconds; absent when the license cannot be renewed. */
  readonly renewal?: {
    readonly delayS: number;
    readonly retryIntervalS: number;
    readonly recoveryDurationS: number;
    readonly url: string;
  };
  /** For a leaf: the root license ids (at least one must be valid). */
  readonly chainRoots: readonly string[];
  /** Domain binding. */
  readonly domain?: { readonly id: string; readonly revision: number };
  /** Minimum security level: 'any', 'software', 'tee' or 'hardware'. */
  readonly minSecurityLevel: string;
  /** Allowed application ids; empty: any. */
  readonly allowedApplications: readonly string[];
  /** Maximum decoded picture size (0: no cap). */
  readonly maxResolution: { readonly width: number; readonly height: number };
}

function typeName(t: keywarden.v1.License.LicenseType | null | undefined): PolicySummary['type'] {
  if (t === v1.License.LicenseType.STREAMING) return 'streaming';
  if (t === v1.License.LicenseType.OFFLINE) return 'offline';
  return 'unspecified';
}

/**
 * Summarizes `license` for listing. With `firstPlayMs` the playback window's end is filled
 * in. Throws LICENSE_PROCESSING_FAILED for a malformed policy (negative durations).
 */
export function policySummary(license: keywarden.v1.ILicense, firstPlayMs?: number): PolicySummary {
  const p = license.policy ?? {};
  const chainRoots = p.chain?.isRoot ? [] : [...(p.chain?.rootLicenseIds ?? [])];
  return {
    id: license.id ?? '',
    type: typeName(license.type),
    kind: p.chain?.isRoot ? 'root' : chainRoots.length > 0 ? 'leaf' : 'simple',
    contentId: license.contentId ?? '',
    keyIds: (license.keys ?? []).map((k) => Buffer.from(k.kid ?? []).toString('hex')),
    rights: licenseRights(license),
    windows: timeWindows(license, firstPlayMs),
    ...(p.canRenew && {
      renewal: {
        delayS: Number(p.renewalDelayS ?? 0),
        retryIntervalS: Number(p.renewalRetryIntervalS ?? 0),
        recoveryDurationS: Number(p.renewalRecoveryDurationS ?? 0),
        url: p.renewalUrl ?? '',
      },
    }),
    chainRoots,
    ...(p.domain?.domainId && {
      domain: { id: p.domain.domainId, revision: p.domain.revision ?? 0 },
    }),
    minSecurityLevel: p.minSecurityLevel ? securityLevelName(p.minSecurityLevel) : 'any',
    allowedApplications: [...(p.allowedApplicationIds ?? [])],
    maxResolution: { width: p.maxWidth ?? 0, height: p.maxHeight ?? 0 },
  };
}

const when = (ms: number | undefined): string =>
  ms === undefined ? 'no limit' : new Date(ms).toISOString();

const span = (ms: number | undefined): string => {
  if (ms === undefined) return 'no limit';
  const h = ms / 3_600_000;
  return h >= 48 && h % 24 === 0 ? `${h / 24}d` : `${+h.toFixed(3)}h`;
};

/** One line per field, for a terminal. */
export function formatPolicySummary(s: PolicySummary): string {
  const yes = (b: boolean): string => (b ? 'yes' : 'no');
  const w = s.windows;
  const lines = [
    `license ${s.id} (${s.kind}, ${s.type})${s.contentId ? ` content ${s.contentId}` : ''}`,
    `  rights: play ${yes(s.rights.play)}, persist ${yes(s.rights.persist)}, renew ${yes(s.rights.renew)}`,
    `  issued: ${when(w.issuedAtMs)}`,
    `  license ends: ${when(w.licenseEndMs)}; expires at: ${when(w.expiresAtMs)}`,
    `  rental ends: ${when(w.rentalEndMs)}; playback window: ${span(w.playbackDurationMs)}${
      w.playbackEndMs === undefined ? '' : ` (ends ${when(w.playbackEndMs)})`
    }`,
  ];
  if (s.renewal)
    lines.push(
      `  renewal: after ${s.renewal.delayS}s, retry every ${s.renewal.retryIntervalS}s, recovery ${s.renewal.recoveryDurationS}s`,
    );
  if (s.chainRoots.length > 0) lines.push(`  roots: ${s.chainRoots.join(', ')}`);
  if (s.domain) lines.push(`  domain: ${s.domain.id} (revision ${s.domain.revision})`);
  lines.push(`  min security level: ${s.minSecurityLevel}`);
  lines.push(
    `  applications: ${s.allowedApplications.length > 0 ? s.allowedApplications.join(', ') : 'any'}`,
  );
  return lines.join('\n');
}
