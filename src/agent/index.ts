/**
 * The agent library (docs/agent.md): `Agent.create(config)` and what it hands out.
 */
export { Agent, STATE_FILES, type AgentStatus, type DomainsApi } from './agent.js';
export {
  AGENT_VERSION,
  loadAgentConfig,
  resolveAgentConfig,
  type AgentConfig,
  type AgentConfigFile,
  type OutgoingRequest,
  type RequestFilter,
} from './config.js';
export type { AgentEvents } from './events.js';
export type { DomainInfo } from './domain-manager.js';
export type { ContentHeader, InitDataType } from './init-data.js';
export {
  kidHex,
  type AcquireRequest,
  type AcquireResult,
  type LicenseInfo,
  type RemoveResult,
} from './license-manager.js';
export type { KeyStatus } from './policy/types.js';
export type { PolicySummary } from './policy/summary.js';
export { Session, type SessionEvents, type SessionOptions } from './session.js';
export type { KeyVault } from '../crypto/key-vault.js';
export type { TimeSource } from '../crypto/secure-clock.js';
