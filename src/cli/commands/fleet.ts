import type { Command } from 'commander';
import { kwError } from '../../errors/index.js';
import { printResult, withHeadend } from '../headend-access.js';

function dataDir(fleet: Command): string {
  const dir = fleet.opts<{ data?: string }>().data;
  if (!dir) throw kwError('CLI_USAGE', 'fleet needs --data DIR');
  return dir;
}

const when = (ms: number | null): string => (ms === null ? 'never' : new Date(ms).toISOString());

interface RevokeFlags {
  device?: string;
  license?: string;
  kid?: string;
  content?: string;
  reason: string;
  json?: boolean;
}

function registerRevoke(fleet: Command): void {
  fleet
    .command('revoke')
    .description(
      'revoke a device, license, key or content id and issue the next revocation list (a running head-end publishes it within a second)',
    )
    .option('--device <id>', 'device id (also refused by the provisioning and license servers)')
    .option('--license <id>', 'license id (renewals are refused)')
    .option('--kid <hex>', 'key id, 32 hex digits (licenses for it are refused)')
    .option('--content <id>', 'operator content id (licenses for it are refused)')
    .option('--reason <text>', 'why', 'revoked by operator')
    .option('--json', 'JSON output')
    .action(async (f: RevokeFlags) => {
      const given = (
        [
          ['device', f.device],
          ['license', f.license],
          ['key', f.kid],
          ['content', f.content],
        ] as const
      ).filter((g): g is readonly ['device' | 'license' | 'key' | 'content', string] =>
        Boolean(g[1]),
      );
      const one = given[0];
      if (given.length !== 1 || !one)
        throw kwError('CLI_USAGE', 'give exactly one of --device, --license, --kid, --content');
      const out = await withHeadend(dataDir(fleet), (h) =>
        h.fleet.revoke(one[0], one[1], f.reason),
      );
      const summary = {
        kind: out.kind,
        value: out.value,
        added: out.added,
        listNumber: out.list.number,
        issuedAt: out.list.issuedAt,
        nextUpdate: out.list.nextUpdate,
      };
      printResult(
        f.json,
        summary,
        () =>
          `${out.added ? 'revoked' : 'already revoked:'} ${out.kind} ${out.value}; revocation list ${out.list.number}`,
      );
    });
}

function registerCommand(fleet: Command): void {
  fleet
    .command('command')
    .description(
      'queue a signed command for a device: wipe, renew-now, report-status, revoke-license ID, revoke-key KID',
    )
    .argument('<device>')
    .argument('<action>')
    .argument('[argument]', 'license id or KID')
    .option('--json', 'JSON output')
    .action(
      async (device: string, action: string, arg: string | undefined, f: { json?: boolean }) => {
        const out = await withHeadend(dataDir(fleet), (h) =>
          h.fleet.command(device, action, arg ?? ''),
        );
        printResult(
          f.json,
          out,
          () =>
            `queued ${out.action}${out.argument ? ` ${out.argument}` : ''} for ${out.deviceId} (command ${out.id}, expires ${when(out.expiresAt)})`,
        );
      },
    );
}

function registerStatus(fleet: Command): void {
  fleet
    .command('status')
    .description(
      'every device: online/offline, revocation list applied vs current, pending commands',
    )
    .option('--json', 'JSON output')
    .action(async (f: { json?: boolean }) => {
      const st = await withHeadend(dataDir(fleet), (h) => h.fleet.status());
      printResult(f.json, st, () => {
        const head = `revocation list ${st.listNumber} (${st.entries} entries, issued ${when(st.listIssuedAt)}, next update ${when(st.listNextUpdate)})`;
        const rows = st.devices.map((d) => {
          const pending = d.pending.map((c) => `${c.action}${c.argument ? ` ${c.argument}` : ''}`);
          return (
            `${d.deviceId}  ${d.online ? 'online' : 'offline'}${d.revoked ? '  REVOKED' : ''}` +
            `  list ${d.listApplied}/${d.listCurrent}${d.listApplied < d.listCurrent ? ' (behind)' : ''}` +
            `  pending: ${pending.length ? pending.join(', ') : 'none'}`
          );
        });
        return [head, ...(rows.length ? rows : ['(no devices)'])].join('\n');
      });
    });
}

/** Registers `keywarden fleet` (revocations, commands, status). */
export function registerFleet(program: Command): void {
  const fleet = program
    .command('fleet')
    .description('fleet revocation lists, device commands and status (MQTT; see docs/headend.md)')
    .option('--data <dir>', 'head-end data dir');
  registerRevoke(fleet);
  registerCommand(fleet);
  registerStatus(fleet);
}
