/**
 * The reference head-end: provisioning authority, license server, domain controller and
 * content key store over one data dir. Loaded lazily by the CLI (its dependencies are
 * optional for device installs).
 */
import { HeadendAdmin } from './admin.js';
import { FleetAdmin } from './fleet/fleet-admin.js';
import { startFleet, type FleetOptions, type RunningFleet } from './fleet/fleet-service.js';
import { HeadendContext, type HeadendOptions } from './headend.js';
import { DomainController } from './services/domain-controller.js';
import { LicenseService } from './services/license-service.js';
import { ProvisioningService } from './services/provisioning-service.js';

/** An opened head-end: its services over one context. */
export class Headend {
  readonly provisioning: ProvisioningService;
  readonly domains: DomainController;
  readonly licenses: LicenseService;
  readonly admin: HeadendAdmin;
  /** Revocation lists, fleet commands and status (`keywarden fleet`). */
  readonly fleet: FleetAdmin;

  private constructor(readonly ctx: HeadendContext) {
    this.provisioning = new ProvisioningService(ctx);
    this.domains = new DomainController(ctx);
    this.licenses = new LicenseService(ctx, this.domains);
    this.admin = new HeadendAdmin(ctx, this.domains);
    this.fleet = new FleetAdmin(ctx);
  }

  /**
   * Starts the fleet side on this head-end: the embedded MQTT broker (unless
   * `opts.mqttUrl`) and the publisher. One per data dir (the cluster's primary).
   */
  startFleet(opts: FleetOptions = {}): Promise<RunningFleet> {
    return startFleet(this.ctx, opts);
  }

  /** Opens (on first run: creates) the head-end in `opts.dataDir`. */
  static async open(opts: HeadendOptions): Promise<Headend> {
    return new Headend(await HeadendContext.open(opts));
  }

  /** The operator root certificate, DER: what devices pin. */
  get rootCertificate(): Buffer {
    return this.ctx.pki.rootDer;
  }

  /** Closes the database; requests still running then fail with STORE_FAILED (503). */
  close(): Promise<void> {
    return this.ctx.close();
  }
}

export {
  HeadendAdmin,
  type ContentKeyInput,
  type DeviceSummary,
  type DomainSummary,
  type FlagSummary,
} from './admin.js';
export { FLAG_NAMES, SERVER_FLAGS } from './flags.js';
export type { HeadendOptions } from './headend.js';
export { DEFAULT_SETTINGS, type HeadendSettings } from './settings.js';
export { parseDuration, formatDuration } from './policy/durations.js';
export { POLICY_SETTERS } from './policy/policy-args.js';
export type { PolicySpec } from './policy/policy-spec.js';
export { startHeadendServer, type HeadendServer, type ServerOptions } from './http/server.js';
export { runHeadendCluster, type ClusterOptions, type HeadendCluster } from './http/cluster.js';
export {
  FLEET_ACTIONS,
  type FleetStatus,
  type FleetDeviceSummary,
  type CommandSummary,
} from './fleet/fleet-admin.js';
export { DEFAULT_MQTT_PORT, type FleetOptions, type RunningFleet } from './fleet/fleet-service.js';
export { DEFAULT_FLEET_PREFIX, fleetTopics } from './fleet/publisher.js';
export { buildRevocationList, DEFAULT_LIST_INTERVAL_MS } from './fleet/revocation-lists.js';
