/**
 * Output protection (issue 6): the policy tables and decision (./policy), the scripted
 * scenario loader, and the output monitor the agent runs. docs/output-protection.md.
 */
export * from './policy/index.js';
export type * from './types.js';
export { loadKmsScenario, parseKmsScenario, validateKmsScenario } from './scenario.js';
export {
  OutputMonitor,
  defaultDrmDevice,
  type OutputBackend,
  type OutputIncident,
  type OutputMonitorEvents,
  type OutputMonitorOptions,
} from './monitor.js';
