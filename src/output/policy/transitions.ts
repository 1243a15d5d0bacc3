/**
 * Helpers for the output monitor's transition checks (6031 link lost, 6035 connector added).
 * The pure decision never raises those codes: they describe a change between two snapshots.
 */
import type { OutputConnectorState, OutputState } from '../types.js';
import { isActive } from './mechanisms.js';

/**
 * True when HDCP was Enabled on an active connector and, on the same connector still active,
 * no longer is (the kernel turns Enabled back to Desired when the link drops). A connector
 * that went inactive or disappeared is not a link loss: nothing is shown on it any more.
 */
export function isLinkLoss(
  before: OutputConnectorState | undefined,
  after: OutputConnectorState | undefined,
): boolean {
  if (!before || !after) return false;
  return (
    isActive(before) &&
    before.contentProtection === 'enabled' &&
    isActive(after) &&
    after.contentProtection !== 'enabled'
  );
}

/** The connectors of `after` whose HDCP link was lost since `before` (matched by connector id). */
export function linkLosses(before: OutputState, after: OutputState): OutputConnectorState[] {
  if (!before.known || !after.known) return [];
  const prev = new Map(before.connectors.map((c) => [c.id, c]));
  return after.connectors.filter((c) => isLinkLoss(prev.get(c.id), c));
}

/**
 * The connectors active in `after` that were not active in `before` (matched by connector
 * id). When `before` was unknown every active connector of `after` counts as added.
 */
export function addedOutputs(before: OutputState, after: OutputState): OutputConnectorState[] {
  if (!after.known) return [];
  const wasActive = new Set(
    before.known ? before.connectors.filter(isActive).map((c) => c.id) : [],
  );
  return after.connectors.filter((c) => isActive(c) && !wasActive.has(c.id));
}
