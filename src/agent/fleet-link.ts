import path from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { isKeywardenError } from '../errors/index.js';
import type { FileSystem } from '../io/fs.js';
import {
  FleetClient,
  type FleetState,
  type FleetTlsOptions,
  type ReconnectPolicy,
} from '../fleet/index.js';
import { keywarden } from '../protocol/generated/proto.js';
import type { DeviceCredentials } from './device-credentials.js';
import type { LicenseManager } from './license-manager.js';
import { SealedState } from './sealed-state.js';

const Kind = keywarden.v1.RevocationEntry.Kind;
const Action = keywarden.v1.FleetCommand.Action;

/** The agent's fleet settings (docs/fleet.md). */
export interface FleetConfig {
  /** The broker: mqtt://host:1883 or mqtts://host:8883. */
  readonly url: string;
  /** Topic prefix (default "keywarden"). */
  readonly topicPrefix?: string;
  /** MQTT 5 (default) or 4 (3.1.1). */
  readonly protocolVersion?: 4 | 5;
  /**
   * The head-end's GET /v1/fleet/revocations, pulled on every connect and, while the broker
   * is unreachable, on every reconnect attempt.
   */
  readonly pullUrl?: string;
  readonly tls?: FleetTlsOptions;
  readonly username?: string;
  readonly password?: string;
  /**
   * Past the applied list's next update (or before any list): 'refuse' (default) refuses new
   * licenses until a fresh list arrives (FLEET_LIST_STALE, 7605); 'allow' only reports it.
   */
  readonly whenStale?: 'refuse' | 'allow';
  /**
   * Reconnect backoff (default 1 s doubling to 60 s, jittered). While the broker is
   * unreachable the list is also pulled over HTTP once per attempt, i.e. at this pace.
   */
  readonly reconnect?: ReconnectPolicy;
}

/** The revocations in force, kept sealed so a restart re-applies them. */
interface RevocationsFile {
  readonly licenses: string[];
  readonly kids: string[];
  readonly contentIds: string[];
  readonly device: boolean;
}

/** What the link needs from the agent. */
export interface FleetLinkHost {
  readonly stateDir: string;
  /** The file system of the agent's state (config.fs). */
  readonly fs?: FileSystem;
  readonly storageKey: (purpose: string) => Uint8Array;
  readonly trustedRoot: X509Certificate;
  readonly agentVersion: string;
  readonly licenses: LicenseManager;
  applyRevocations(r: Partial<RevocationsFile>): Promise<string[]>;
  now(): number;
}

/** Splits a revocation list into what concerns this device. */
export function revocationsFor(
  list: keywarden.v1.IRevocationList,
  deviceId: string,
): RevocationsFile {
  const out: RevocationsFile = { licenses: [], kids: [], contentIds: [], device: false };
  for (const e of list.entries ?? []) {
    const value = e.value ?? '';
    if (e.kind === Kind.LICENSE) out.licenses.push(value);
    else if (e.kind === Kind.KEY) out.kids.push(value.replaceAll('-', '').toLowerCase());
    else if (e.kind === Kind.CONTENT) out.contentIds.push(value);
    else if (e.kind === Kind.DEVICE && value === deviceId)
      (out as { device: boolean }).device = true;
  }
  return out;
}

/**
 * The agent's end of the fleet channel: a FleetClient signing with the device key, its
 * state sealed in the state directory, revocation lists applied through the license
 * manager (and re-applied at start-up), commands executed, status published.
 */
export class FleetLink {
  readonly client: FleetClient;
  private readonly revocations: SealedState<RevocationsFile>;

  constructor(
    private readonly host: FleetLinkHost,
    creds: DeviceCredentials,
    config: FleetConfig,
  ) {
    const fleetState = new SealedState<FleetState>(
      path.join(host.stateDir, 'fleet.bin'),
      host.storageKey('fleet'),
      'keywarden/v1 agent fleet-state',
      host.fs,
    );
    this.revocations = new SealedState<RevocationsFile>(
      path.join(host.stateDir, 'revocations.bin'),
      host.storageKey('fleet'),
      'keywarden/v1 agent revocations',
      host.fs,
    );
    this.client = new FleetClient({
      url: config.url,
      deviceId: creds.deviceId,
      trustedRoot: host.trustedRoot,
      signer: creds.signer,
      store: { get: () => fleetState.read(), set: (s) => fleetState.write(s) },
      applyRevocationList: async (list) => {
        const r = revocationsFor(list, creds.deviceId);
        await this.host.applyRevocations(r);
        await this.revocations.write(r);
        await this.publishStatus();
        return {
          ok: true,
          message: `applied ${r.licenses.length + r.kids.length + r.contentIds.length} entries`,
        };
      },
      onCommand: (cmd) => this.command(cmd),
      now: () => host.now(),
      ...(config.topicPrefix && { topicPrefix: config.topicPrefix }),
      ...(config.protocolVersion && { protocolVersion: config.protocolVersion }),
      ...(config.pullUrl && { pullUrl: config.pullUrl }),
      ...(config.tls && { tls: config.tls }),
      ...(config.username && { username: config.username }),
      ...(config.password && { password: config.password }),
      ...(config.reconnect && { reconnect: config.reconnect }),
    });
  }

  /** Re-applies the revocations in force, then connects. */
  async start(): Promise<void> {
    const known = await this.revocations.read().catch(() => undefined);
    if (known) await this.host.applyRevocations(known);
    await this.client.start();
  }

  /** Disconnects (the broker publishes the offline marker). */
  stop(): Promise<void> {
    return this.client.stop();
  }

  /** Publishes this device's status (retained). */
  async publishStatus(): Promise<void> {
    const licenses = await this.host.licenses.select().catch(() => []);
    await this.client
      .publishStatus({ agentVersion: this.host.agentVersion, licenseCount: licenses.length })
      .catch(() => undefined);
  }

  private async command(
    cmd: keywarden.v1.FleetCommand,
  ): Promise<{ ok: boolean; errorCode?: number; message?: string }> {
    try {
      switch (cmd.action) {
        case Action.REVOKE_LICENSE:
          await this.host.applyRevocations({ licenses: [cmd.argument] });
          break;
        case Action.REVOKE_KEY:
          await this.host.applyRevocations({ kids: [cmd.argument.toLowerCase()] });
          break;
        case Action.WIPE: {
          const all = await this.host.licenses.select();
          await this.host.applyRevocations({ licenses: all.map((l) => l.id) });
          break;
        }
        case Action.RENEW_NOW:
          for (const l of await this.host.licenses.select())
            if (l.policy && l.renewAtMs !== undefined)
              await this.host.licenses.renew(l.id).catch(() => undefined);
          break;
        case Action.REPORT_STATUS:
          break;
        default:
          return { ok: false, message: `unsupported action ${String(cmd.action)}` };
      }
      await this.publishStatus();
      return { ok: true };
    } catch (err) {
      return isKeywardenError(err)
        ? { ok: false, errorCode: err.number, message: err.message }
        : { ok: false, message: String(err) };
    }
  }
}
