import type { KeywardenError } from '../errors/index.js';
import type { OutputState } from '../output/index.js';
import type { DomainInfo } from './domain-manager.js';
import type { LicenseInfo } from './license-manager.js';

/**
 * The agent's state events (an integrator's UI and logs listen to these). Every failure
 * carries a coded KeywardenError.
 */
export interface AgentEvents {
  /** The device is asking the provisioning authority for a certificate. */
  individualizing: [{ reason: string; attempt: number }];
  /** The device holds a certificate. */
  individualized: [{ deviceId: string; reason: string }];
  /** The hardware identity changed significantly (6013); individualization follows. */
  'hardware-changed': [KeywardenError];
  /** A license request is on its way. */
  'acquiring-license': [{ kids: readonly string[]; contentId: string; url: string }];
  /** A license arrived, was verified, and is held (stored if persistable). */
  'license-acquired': [LicenseInfo];
  /** A transient failure; the request is retried after `delayMs`. */
  retrying: [{ url: string; attempt: number; delayMs: number; error: KeywardenError }];
  /** A domain-required answer: joining the named domain. */
  'joining-domain': [{ accountId: string }];
  /** A renew-domain answer: refreshing the domain key. */
  'renewing-domain': [{ accountId: string }];
  'domain-joined': [DomainInfo];
  'domain-left': [{ domainId: string }];
  /** A renewal is on its way. */
  renewing: [{ id: string }];
  renewed: [{ id: string }];
  /** A renewal failed; playback continues inside the recovery window, if any. */
  'renewal-failed': [{ id: string; error: KeywardenError }];
  /** A license's time ran out (by trusted time). */
  expired: [{ id: string; error: KeywardenError | undefined }];
  /** A release was requested; the record stays until the server confirms. */
  'release-pending': [{ id: string }];
  /** The server confirmed a release; the license is gone. */
  released: [{ id: string }];
  /** A release could not be sent; it is retried later. */
  'release-failed': [{ id: string; error: KeywardenError }];
  /** The operator revoked licenses (or this device); their keys stopped at once. */
  revoked: [{ licenses: readonly string[]; device: boolean }];
  /** The outputs changed (hot-plug, HDCP state); open sessions were re-evaluated. */
  'output-change': [OutputState];
  /**
   * An output change during playback: HDCP link lost (6031), output connected (6035), sink
   * revoked/tampered (6033/6034), HDCP failed (6032). Keys the change affects turn
   * 'output-restricted' until the outputs satisfy the license again.
   */
  'output-incident': [{ connector: string; error: KeywardenError }];
  /** The wall clock went back (trusted time is unaffected). */
  'clock-rollback': [KeywardenError];
  /** A stored license could not be used (tampered, rolled back, foreign). */
  'store-problem': [{ id?: string; error: KeywardenError }];
  /**
   * A background task failed (maintenance, an unreadable clock or domains file); the agent
   * keeps running. (Not named 'error': an unheard 'error' event would throw.)
   */
  problem: [KeywardenError];
}
