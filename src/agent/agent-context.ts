import type { SecureClock } from '../crypto/secure-clock.js';
import type { KeywardenError } from '../errors/index.js';
import type { keywarden } from '../protocol/generated/proto.js';
import type { ResolvedAgentConfig } from './config.js';
import type { DeviceCredentials } from './device-credentials.js';
import type { DomainManager } from './domain-manager.js';
import type { AgentEvents } from './events.js';
import type { OutputInput } from './policy/types.js';
import type { ServiceClientOptions } from './signed-exchange.js';

/** What the agent's parts (license manager, sessions) need from the agent. */
export interface AgentContext {
  readonly config: ResolvedAgentConfig;
  readonly clock: SecureClock;
  readonly domains: DomainManager;
  /** Output protection verdict for the policy engine (issue 6's output monitor). */
  readonly outputCheck?: OutputInput;
  emit<E extends keyof AgentEvents>(event: E, ...args: AgentEvents[E]): boolean;
  /** Signing credentials and trust for a service, individualizing first when needed. */
  serviceClient(service: 'license' | 'domain'): Promise<ServiceClientOptions>;
  /** The credentials, once individualized (NOT_INDIVIDUALIZED before). */
  credentialsNow(): DeviceCredentials;
  /** This device's id, individualizing first when needed. */
  deviceId(): Promise<string>;
  /** A server refused the certificate: individualize again (or rethrow). */
  reindividualize(err: KeywardenError, signal?: AbortSignal): Promise<void>;
  /**
   * Runs before every NEW license request; throws to refuse it (a stale revocation list,
   * FLEET_LIST_STALE). Renewals and releases do not pass through it.
   */
  beforeNewLicense(signal?: AbortSignal): Promise<void>;
  /** Client facts sent with license requests. */
  clientInfo(): keywarden.v1.IClientInfo;
  /** The key vault's protection level. */
  securityLevel(): keywarden.v1.SecurityLevel;
  /** The device's name in domains. */
  friendlyName(): string;
}
