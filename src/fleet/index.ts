/**
 * The device side of fleet revocation over MQTT (docs/fleet.md). Imports only src/errors,
 * src/io, src/crypto, src/protocol and mqtt.
 */
export {
  backoffDelay,
  FleetClient,
  type AckEvent,
  type FleetApplyOutcome,
  type FleetClientOptions,
  type FleetTlsOptions,
  type ListSource,
  type ReconnectPolicy,
  type RejectedEvent,
  type RevocationListEvent,
  type StatusInput,
} from './client.js';
export { pullRevocationList, REVOCATIONS_PATH, type PullOptions } from './pull.js';
export {
  VerifiedChainCache,
  type SignerCacheStats,
  type VerifiedSigner,
} from '../crypto/chain-cache.js';
export {
  CommandNonceSet,
  DEFAULT_MAX_NONCES,
  EMPTY_FLEET_STATE,
  MemoryFleetStateStore,
  parseFleetState,
  type FleetState,
  type FleetStateStore,
} from './state.js';
export {
  fleetTopics,
  isOfflineMarker,
  OFFLINE_MARKER,
  revocationsTopic,
  type FleetTopics,
} from './topics.js';
export {
  DEFAULT_MAX_COMMAND_LIFETIME_MS,
  DEFAULT_MAX_FLEET_PAYLOAD_BYTES,
  FLEET_PUBLISHER_NAME,
  FleetVerifier,
  sharedSignerCache,
  verifyCommand,
  verifyRevocationList,
  type FleetCounters,
  type FleetVerifierOptions,
  type VerifiedCommand,
  type VerifiedRevocationList,
} from './verify.js';
