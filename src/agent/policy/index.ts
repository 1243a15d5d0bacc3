/**
 * The policy engine (issue 4): pure decisions over a license, its usage state and the
 * trusted time. See docs/policy.md.
 */
export { evaluate, DEFAULT_NOT_BEFORE_SKEW_MS } from './evaluate.js';
export {
  renewalPlan,
  rootRenewAt,
  DEFAULT_RETRY_INTERVAL_MS,
  DEFAULT_ROOT_RENEWAL_LEAD_MS,
  type RenewalPlan,
  type RenewalPlanOptions,
} from './renewal.js';
export {
  checkDevice,
  licenseRights,
  requireRight,
  securityLevelName,
  type DeviceRefusal,
  type LicenseRights,
  type Right,
} from './rights.js';
export { formatPolicySummary, policySummary, type PolicySummary } from './summary.js';
export type {
  DeviceFacts,
  Evaluation,
  KeyStatus,
  LicenseState,
  OutputCheck,
  OutputInput,
  OutputVerdict,
  PolicyInput,
  PolicyOptions,
  PolicyReason,
  PolicyRule,
  RenewalHistory,
} from './types.js';
export { durationMs, earliest, timeWindows, type TimeWindows } from './windows.js';
