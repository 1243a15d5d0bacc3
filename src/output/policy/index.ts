/**
 * The output-protection policy (issue 6): OPL tables, connector mechanisms, the pure
 * decision, and views for the CLI. docs/output-protection.md describes it.
 */
export {
  OPL_TABLES,
  LEVEL_ORDER,
  DEFAULT_CGMS_A,
  NO_REQUIREMENTS,
  oplRowOf,
  levelOf,
  stricter,
  demandsMore,
  hdcpRequirementOf,
  cgmsAValueOf,
  requirementsOf,
  type OplRow,
} from './levels.js';
export {
  CONNECTOR_PROFILES,
  profileOf,
  isActive,
  analogSideLive,
  toClientInfoOutput,
  toClientInfoOutputs,
  type ConnectorProfile,
} from './mechanisms.js';
export {
  decideOutput,
  effectiveLevels,
  trackOf,
  tracksOf,
  toOutputCheck,
  type EffectiveLevels,
  type OutputVerdictCheck,
} from './decide.js';
export { explainLicense, describeDecision, strictestLevel } from './explain.js';
export { isLinkLoss, linkLosses, addedOutputs } from './transitions.js';
