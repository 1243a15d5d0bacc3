import type { Command } from 'commander';
import { kwError } from '../../errors/index.js';
import { loadHeadend, printResult, withHeadend } from '../headend-access.js';
import { decode16 } from '../key-arg.js';
import { registerLive } from './headend-live.js';

function int(text: string): number {
  if (!/^\d+$/.test(text)) throw kwError('CLI_USAGE', `'${text}' is not a whole number`);
  return Number(text);
}

function port(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535)
    throw kwError('CLI_USAGE', `'${text}' is not a TCP port`);
  return Number(text);
}

/**
 * `--data` belongs to `headend` itself; commander parses a parent's options anywhere on the
 * line, so `headend content add --data DIR` and `headend --data DIR content add` both work.
 */
function dataDir(headend: Command): string {
  const dir = headend.opts<{ data?: string }>().data;
  if (!dir) throw kwError('CLI_USAGE', 'headend needs --data DIR');
  return dir;
}

interface ServeFlags {
  data: string;
  port: number;
  host: string;
  tlsCert?: string;
  tlsKey?: string;
  workers?: number;
  minAgentVersion?: string;
  provisionLimit?: number;
  domainUrl?: string;
  mqttPort: number;
  mqttHost: string;
  mqttUrl?: string;
  fleetPrefix: string;
  /** false with --no-fleet. */
  fleet: boolean;
}

async function serve(flags: ServeFlags): Promise<void> {
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey))
    throw kwError('CLI_USAGE', '--tls-cert and --tls-key go together');
  const { runHeadendCluster } = await loadHeadend();
  const settings = {
    ...(flags.minAgentVersion && { minAgentVersion: flags.minAgentVersion }),
    ...(flags.provisionLimit !== undefined && { provisioningLimit: flags.provisionLimit }),
    ...(flags.domainUrl && { domainServerUrl: flags.domainUrl }),
  };
  const running = await runHeadendCluster({
    dataDir: flags.data,
    settings,
    ...(flags.workers !== undefined && { workers: flags.workers }),
    // The primary runs the embedded MQTT broker (or uses --mqtt-url) and the fleet publisher.
    fleet: flags.fleet && {
      mqttPort: flags.mqttPort,
      mqttHost: flags.mqttHost,
      prefix: flags.fleetPrefix,
      ...(flags.mqttUrl && { mqttUrl: flags.mqttUrl }),
    },
    server: {
      port: flags.port,
      host: flags.host,
      ...(flags.tlsCert && { tlsCertFile: flags.tlsCert }),
      ...(flags.tlsKey && { tlsKeyFile: flags.tlsKey }),
    },
  });
  process.stderr.write(`keywarden headend: ${running.url} (${running.workers} workers)\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await running.close();
}

function registerContent(headend: Command): void {
  const content = headend.command('content').description('content keys');
  content
    .command('add')
    .description('register a content key (sealed at rest)')
    .requiredOption('--kid <kid>', 'key id, 16 bytes hex/base64')
    .option('--key <key>', 'content key, 16 bytes hex/base64')
    .option('--generate', 'generate a random key (printed once)')
    .option('--content-id <id>', 'operator content id')
    .option('--policy <name>', 'policy to assign')
    .option('--json', 'JSON output')
    .action(
      async (f: {
        kid: string;
        key?: string;
        generate?: boolean;
        contentId?: string;
        policy?: string;
        json?: boolean;
      }) => {
        if (Boolean(f.key) === Boolean(f.generate))
          throw kwError('CLI_USAGE', 'give exactly one of --key and --generate');
        const out = await withHeadend(dataDir(headend), (h) =>
          h.admin.addContentKey({
            kid: decode16(f.kid, 'KID'),
            ...(f.key && { key: decode16(f.key, 'key') }),
            ...(f.contentId && { contentId: f.contentId }),
            ...(f.policy && { policy: f.policy }),
          }),
        );
        printResult(f.json, out, () =>
          out.key ? `added ${out.kid} with key ${out.key}` : `added ${out.kid}`,
        );
      },
    );
  content
    .command('policy')
    .description('assign a policy to a content key')
    .argument('<kid>')
    .argument('<policy>')
    .action(async (kid: string, policy: string) => {
      await withHeadend(dataDir(headend), (h) =>
        h.admin.setContentPolicy(Buffer.from(decode16(kid, 'KID')).toString('hex'), policy),
      );
      process.stdout.write(`content ${kid} uses policy ${policy}\n`);
    });
  content
    .command('list')
    .option('--json', 'JSON output')
    .action(async (f: { json?: boolean }) => {
      const rows = await withHeadend(dataDir(headend), (h) => h.admin.listContent());
      printResult(
        f.json,
        rows,
        () =>
          rows.map((r) => `${r.kid}  ${r.contentId}  ${r.policy ?? '(default)'}`).join('\n') ||
          '(no content)',
      );
    });
}

async function policySetterNames(): Promise<string[]> {
  return Object.keys((await loadHeadend()).POLICY_SETTERS);
}

/** The fields `policy set` accepts; kept in step with POLICY_SETTERS by a unit test. */
export const POLICY_FIELDS = [
  'can-play',
  'can-persist',
  'can-renew',
  'license-duration',
  'rental-duration',
  'playback-duration',
  'renewal-delay',
  'renewal-retry',
  'renewal-recovery',
  'renewal-url',
  'license-custom-data',
  'opl-analog-video',
  'opl-compressed-video',
  'opl-uncompressed-video',
  'opl-compressed-audio',
  'opl-uncompressed-audio',
  'hdcp',
  'hdcp-type1',
  'disable-analog',
  'cgmsa',
  'max-resolution',
  'min-security-level',
  'allowed-apps',
  'domain-bound',
  'chain',
  'roots',
  'broadcast',
  'service-error',
  'service-custom-data',
] as const;

const camel = (kebab: string): string => kebab.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

function registerPolicy(headend: Command): void {
  const policy = headend.command('policy').description('license policies');
  const set = policy
    .command('set')
    .description('create or change a policy (durations: 30d, 24h, 90m, 45s)')
    .argument('<name>')
    .option('--from <policy>', 'start from a copy of another policy')
    .option('--json', 'JSON output');
  // --broadcast alone means --broadcast true.
  for (const field of POLICY_FIELDS)
    set.option(field === 'broadcast' ? `--${field} [value]` : `--${field} <value>`);
  set.action(async (name: string, f: Record<string, string | boolean | undefined>) => {
    const known = await policySetterNames();
    const changes: Record<string, string> = {};
    for (const field of known) {
      const v = f[camel(field)];
      if (typeof v === 'string') changes[field] = v;
      else if (v === true) changes[field] = 'true';
    }
    const from = typeof f.from === 'string' ? f.from : undefined;
    const spec = await withHeadend(dataDir(headend), (h) => h.admin.setPolicy(name, changes, from));
    printResult(
      Boolean(f.json),
      { name, ...spec },
      () => `policy ${name}: ${JSON.stringify(spec)}`,
    );
  });
  policy
    .command('list')
    .option('--json', 'JSON output')
    .action(async (f: { json?: boolean }) => {
      const all = await withHeadend(dataDir(headend), (h) => h.admin.listPolicies());
      printResult(
        f.json,
        all,
        () =>
          Object.entries(all)
            .map(([n, p]) => `${n}: ${JSON.stringify(p)}`)
            .join('\n') || '(no policies)',
      );
    });
}

function registerDevice(headend: Command): void {
  const device = headend.command('device').description('provisioned devices');
  device
    .command('list')
    .option('--json', 'JSON output')
    .action(async (f: { json?: boolean }) => {
      const rows = await withHeadend(dataDir(headend), (h) => h.admin.listDevices());
      printResult(
        f.json,
        rows,
        () =>
          rows
            .map(
              (d) => `${d.id}  ${d.status}  ${d.agentVersion}  ${d.platform}  ${d.provisionedAt}`,
            )
            .join('\n') || '(no devices)',
      );
    });
  device
    .command('revoke')
    .argument('<id>')
    .option('--reason <text>', 'why', 'revoked by operator')
    .option('--json', 'JSON output')
    .action(async (id: string, f: { reason: string; json?: boolean }) => {
      const d = await withHeadend(dataDir(headend), (h) => h.admin.revokeDevice(id, f.reason));
      printResult(f.json, d, () => `device ${d.id} revoked (${f.reason})`);
    });
}

function registerDomain(headend: Command): void {
  const domain = headend.command('domain').description('account domains');
  domain
    .command('create')
    .argument('<account>')
    .option('--max-devices <n>', 'device limit', int)
    .option('--service-id <id>', 'service id sent to devices')
    .option('--json', 'JSON output')
    .action(
      async (account: string, f: { maxDevices?: number; serviceId?: string; json?: boolean }) => {
        const d = await withHeadend(dataDir(headend), (h) =>
          h.admin.createDomain(account, {
            ...(f.maxDevices !== undefined && { maxDevices: f.maxDevices }),
            ...(f.serviceId && { serviceId: f.serviceId }),
          }),
        );
        printResult(
          f.json,
          d,
          () => `account ${d.accountId}: domain ${d.domainId}, up to ${d.maxDevices} devices`,
        );
      },
    );
  domain
    .command('list')
    .option('--json', 'JSON output')
    .action(async (f: { json?: boolean }) => {
      const rows = await withHeadend(dataDir(headend), (h) => h.admin.listDomains());
      printResult(
        f.json,
        rows,
        () =>
          rows
            .map(
              (d) =>
                `${d.accountId}  ${d.domainId}  rev ${d.revision}  ${d.members.length}/${d.maxDevices}${d.serviceHold ? '  ON HOLD' : ''}`,
            )
            .join('\n') || '(no domains)',
      );
    });
  domain
    .command('remove')
    .description('remove a device from a domain (rotates the domain key)')
    .argument('<account>')
    .argument('<device>')
    .option('--json', 'JSON output')
    .action(async (account: string, deviceId: string, f: { json?: boolean }) => {
      const d = await withHeadend(dataDir(headend), (h) =>
        h.admin.removeDomainDevice(account, deviceId),
      );
      printResult(
        f.json,
        d,
        () => `removed ${deviceId}; domain ${d.domainId} is at revision ${d.revision}`,
      );
    });
  domain
    .command('hold')
    .description(
      'answer license requests of an account with 6007 and custom data (--release lifts it)',
    )
    .argument('<account>')
    .argument('[custom-data]', 'what the application shows', 'you need to pay your bill')
    .option('--release', 'lift the hold')
    .action(async (account: string, data: string, f: { release?: boolean }) => {
      await withHeadend(dataDir(headend), (h) =>
        h.admin.holdAccount(account, f.release ? null : data),
      );
      process.stdout.write(
        f.release ? `account ${account}: hold lifted\n` : `account ${account}: on hold\n`,
      );
    });
}

/** The server flags `flags set` takes; kept in step with SERVER_FLAGS by a unit test. */
export const FLAG_FIELDS = ['min-agent-version', 'provision-limit'] as const;

function registerFlags(headend: Command): void {
  const flags = headend
    .command('flags')
    .description(
      'server flags kept in the database: every worker applies them at once, and they survive restarts',
    );
  const show = (f: { name: string; value: string; source: string }): string =>
    `${f.name} = ${f.value}${f.source === 'default' ? '  (default)' : ''}`;
  flags
    .command('set')
    .description(`set a flag (${FLAG_FIELDS.join(', ')})`)
    .argument('<name>')
    .argument('<value>')
    .option('--json', 'JSON output')
    .action(async (name: string, value: string, f: { json?: boolean }) => {
      const out = await withHeadend(dataDir(headend), (h) => h.admin.setFlag(name, value));
      printResult(f.json, out, () => show(out));
    });
  flags
    .command('unset')
    .description('remove a stored flag: its default applies again')
    .argument('<name>')
    .option('--json', 'JSON output')
    .action(async (name: string, f: { json?: boolean }) => {
      const out = await withHeadend(dataDir(headend), (h) => h.admin.unsetFlag(name));
      printResult(f.json, out, () => show(out));
    });
  flags
    .command('list')
    .option('--json', 'JSON output')
    .action(async (f: { json?: boolean }) => {
      const all = await withHeadend(dataDir(headend), (h) => h.admin.listFlags());
      printResult(f.json, all, () => all.map((x) => `${show(x)}\n    ${x.description}`).join('\n'));
    });
}

function registerRoot(headend: Command): void {
  headend
    .command('root')
    .description('create a subscription root that leaf policies name')
    .argument('<id>')
    .option('--policy <name>', "the root license's policy (its expiry)")
    .action(async (id: string, f: { policy?: string }) => {
      await withHeadend(dataDir(headend), (h) => h.admin.addRoot(id, f.policy ?? null));
      process.stdout.write(`root ${id}${f.policy ? ` uses policy ${f.policy}` : ''}\n`);
    });
}

/** Registers `keywarden headend` (serve) and its admin subcommands. */
export function registerHeadend(program: Command): void {
  const headend = program
    .command('headend')
    .description('run the reference head-end (provisioning, licenses, domains) or administer it')
    .option('--data <dir>', 'head-end data dir (database, master key)')
    .option('--port <n>', 'TCP port', int, 8443)
    .option('--host <addr>', 'interface to bind', '127.0.0.1')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--workers <n>', 'worker processes (default: CPU count)', int)
    .option('--min-agent-version <v>', 'refuse to provision older agents (stored: see flags)')
    .option(
      '--provision-limit <n>',
      'provisioning requests per hardware id per hour (stored: see flags)',
      int,
    )
    .option('--domain-url <url>', 'domain controller URL sent in domain-required answers')
    .option('--mqtt-port <n>', 'port of the embedded MQTT broker (fleet)', port, 1883)
    .option('--mqtt-host <addr>', 'interface of the embedded MQTT broker', '127.0.0.1')
    .option('--mqtt-url <url>', 'use this external MQTT broker instead of the embedded one')
    .option('--fleet-prefix <prefix>', 'MQTT topic prefix of the fleet', 'keywarden')
    .option('--no-fleet', 'run no MQTT broker and no fleet publisher')
    .action(async (f: ServeFlags & { data?: string }) => {
      if (!f.data) throw kwError('CLI_USAGE', 'headend needs --data DIR');
      await serve(f);
    });
  registerContent(headend);
  registerPolicy(headend);
  registerDevice(headend);
  registerDomain(headend);
  registerRoot(headend);
  registerFlags(headend);
  registerLive(headend, (fn) => withHeadend(dataDir(headend), fn));
}
