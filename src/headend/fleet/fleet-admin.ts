import { randomBytes } from 'node:crypto';
import { kwError } from '../../errors/index.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import type { RevocationKind } from '../store/repository.js';
import { canonicalRevocation, RevocationLists, type RevokeOutcome } from './revocation-lists.js';

const Action = keywarden.v1.FleetCommand.Action;

/** Default lifetime of a queued command: 7 days. */
export const DEFAULT_COMMAND_TTL_MS = 7 * 86400_000;

/** Command names of `keywarden fleet command`, with whether they take an argument. */
export const FLEET_ACTIONS: Readonly<
  Record<string, { action: keywarden.v1.FleetCommand.Action; argument?: RevocationKind }>
> = {
  wipe: { action: Action.WIPE },
  'renew-now': { action: Action.RENEW_NOW },
  'report-status': { action: Action.REPORT_STATUS },
  'revoke-license': { action: Action.REVOKE_LICENSE, argument: 'license' },
  'revoke-key': { action: Action.REVOKE_KEY, argument: 'key' },
};

const ACTION_NAMES = new Map(Object.entries(FLEET_ACTIONS).map(([n, a]) => [a.action, n]));

/** A queued command, for display. */
export interface CommandSummary {
  readonly id: string;
  readonly deviceId: string;
  readonly action: string;
  readonly argument: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly published: boolean;
}

/** One device in `fleet status`. */
export interface FleetDeviceSummary {
  readonly deviceId: string;
  readonly registered: boolean;
  readonly revoked: boolean;
  readonly online: boolean;
  readonly agentVersion: string;
  readonly licenseCount: number;
  readonly listApplied: number;
  readonly listCurrent: number;
  readonly lastReportAt: number | null;
  readonly pending: CommandSummary[];
}

/** `fleet status`. */
export interface FleetStatus {
  readonly listNumber: number;
  readonly listIssuedAt: number | null;
  readonly listNextUpdate: number | null;
  readonly entries: number;
  readonly devices: FleetDeviceSummary[];
}

/** What `keywarden fleet` does: revocations, commands and status over the store. */
export class FleetAdmin {
  readonly lists: RevocationLists;

  constructor(private readonly ctx: HeadendContext) {
    this.lists = new RevocationLists(ctx);
  }

  /** Records a revocation and issues the next list (the running publisher publishes it). */
  revoke(kind: RevocationKind, value: string, reason: string): Promise<RevokeOutcome> {
    return this.lists.revoke(kind, value, reason);
  }

  /** Queues a command for a device (the running publisher signs and publishes it). */
  async command(
    deviceId: string,
    name: string,
    argument = '',
    ttlMs = DEFAULT_COMMAND_TTL_MS,
  ): Promise<CommandSummary> {
    const spec = FLEET_ACTIONS[name];
    if (!spec)
      throw kwError(
        'CLI_USAGE',
        `unknown command '${name}'; known: ${Object.keys(FLEET_ACTIONS).join(', ')}`,
      );
    if (spec.argument && argument === '')
      throw kwError('CLI_USAGE', `${name} needs an argument (${spec.argument} id)`);
    if (!spec.argument && argument !== '') throw kwError('CLI_USAGE', `${name} takes no argument`);
    const arg = spec.argument ? canonicalRevocation(spec.argument, argument) : '';
    const id = canonicalRevocation('device', deviceId);
    if (!(await this.ctx.store.getDevice(id)))
      throw kwError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
    const now = this.ctx.clock();
    const row = {
      id: randomBytes(16).toString('hex'),
      deviceId: id,
      action: spec.action,
      argument: arg,
      createdAt: now,
      expiresAt: now + ttlMs,
    };
    await this.ctx.store.queueFleetCommand(row);
    return { ...row, action: name, published: false };
  }

  /** Every registered or reporting device with its fleet state. */
  async status(): Promise<FleetStatus> {
    const now = this.ctx.clock();
    const [latest, entries, devices, reports, pending] = await Promise.all([
      this.ctx.store.latestRevocationList(),
      this.ctx.store.listRevocations(),
      this.ctx.store.listDevices(),
      this.ctx.store.listFleetDevices(),
      this.ctx.store.pendingFleetCommands(now),
    ]);
    const current = latest?.number ?? 0;
    const byId = new Map(devices.map((d) => [d.id, d]));
    const reportOf = new Map(reports.map((r) => [r.deviceId, r]));
    const ids = [...new Set([...devices.map((d) => d.id), ...reports.map((r) => r.deviceId)])];
    return {
      listNumber: current,
      listIssuedAt: latest?.issuedAt ?? null,
      listNextUpdate: latest?.nextUpdate ?? null,
      entries: entries.length,
      devices: ids.sort().map((id) => {
        const d = byId.get(id);
        const r = reportOf.get(id);
        return {
          deviceId: id,
          registered: d !== undefined,
          revoked: d?.status === 'revoked',
          online: r?.online ?? false,
          agentVersion: r?.agentVersion || d?.agentVersion || '',
          licenseCount: r?.licenseCount ?? 0,
          listApplied: r?.listNumber ?? 0,
          listCurrent: current,
          lastReportAt: r && r.reportedAt > 0 ? r.reportedAt : null,
          pending: pending
            .filter((c) => c.deviceId === id)
            .map((c) => ({
              id: c.id,
              deviceId: c.deviceId,
              action: ACTION_NAMES.get(c.action) ?? String(c.action),
              argument: c.argument,
              createdAt: c.createdAt,
              expiresAt: c.expiresAt,
              published: c.publishedAt !== null,
            })),
        };
      }),
    };
  }
}
