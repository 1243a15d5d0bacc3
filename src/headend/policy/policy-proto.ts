import { keywarden } from '../../protocol/generated/proto.js';
import type { PolicySpec } from './policy-spec.js';

const v1 = keywarden.v1;
const CGMSA: Record<string, keywarden.v1.OutputProtection.CgmsA> = {
  none: v1.OutputProtection.CgmsA.CGMS_A_UNSET,
  'copy-free': v1.OutputProtection.CgmsA.CGMS_A_COPY_FREE,
  'copy-once': v1.OutputProtection.CgmsA.CGMS_A_COPY_ONCE,
  'copy-never': v1.OutputProtection.CgmsA.CGMS_A_COPY_NEVER,
};

/** What the license binds to beyond the policy itself. */
export interface PolicyBinding {
  /** Domain id and revision for a domain-bound license. */
  readonly domain?: { readonly id: string; readonly revision: number };
  /** Root license ids for a leaf; `isRoot` for a root. */
  readonly chain?: { readonly isRoot: boolean; readonly roots: readonly string[] };
}

function outputProtection(p: PolicySpec): keywarden.v1.IOutputProtection {
  return {
    analogVideoOpl: p.opl.analogVideo,
    uncompressedDigitalVideoOpl: p.opl.uncompressedDigitalVideo,
    compressedDigitalVideoOpl: p.opl.compressedDigitalVideo,
    compressedDigitalAudioOpl: p.opl.compressedDigitalAudio,
    uncompressedDigitalAudioOpl: p.opl.uncompressedDigitalAudio,
    hdcpVersion: p.hdcp,
    hdcpType1: p.hdcpType1,
    cgmsA: CGMSA[p.cgmsa] ?? v1.OutputProtection.CgmsA.CGMS_A_UNSET,
    disableAnalogOutput: p.disableAnalog,
  };
}

/** The wire Policy of a license issued under `p`. */
export function policyToProto(p: PolicySpec, binding: PolicyBinding): keywarden.v1.IPolicy {
  return {
    canPlay: p.canPlay,
    canPersist: p.canPersist,
    canRenew: p.canRenew,
    licenseDurationS: p.licenseDuration,
    rentalDurationS: p.rentalDuration,
    playbackDurationS: p.playbackDuration,
    renewalDelayS: p.renewalDelay,
    renewalRetryIntervalS: p.renewalRetryInterval,
    renewalRecoveryDurationS: p.renewalRecoveryDuration,
    renewalUrl: p.renewalUrl,
    outputProtection: outputProtection(p),
    maxWidth: p.maxWidth,
    maxHeight: p.maxHeight,
    minSecurityLevel: p.minSecurityLevel,
    allowedApplicationIds: [...p.allowedApplications],
    ...(binding.domain && {
      domain: { domainId: binding.domain.id, revision: binding.domain.revision },
    }),
    ...(binding.chain && {
      chain: { isRoot: binding.chain.isRoot, rootLicenseIds: [...binding.chain.roots] },
    }),
  };
}
