import type { Command } from 'commander';

/** Options every `keywarden agent` subcommand takes. */
export interface AgentCliOptions {
  readonly config: string;
  readonly json?: boolean;
}

/**
 * `keywarden agent`: the device agent as a long-lived service (`run`, the default), and the
 * integrator's console on the same state: `status`, `licenses`, `acquire`, `release`,
 * `domain join|leave`. The agent stack loads only when a command runs.
 */
export function registerAgent(program: Command): void {
  const agent = program
    .command('agent')
    .description(
      'run the device agent, or inspect and manage its licenses (see docs/configuration.md)',
    );
  const run = (): Promise<typeof import('./agent-run.js')> => import('./agent-run.js');
  agent
    .command('run', { isDefault: true })
    .description('run the agent as a service: renewals, pending releases, JSON log on stdout')
    .requiredOption('--config <file>', 'agent configuration (JSON)')
    .action(async (o: AgentCliOptions) => (await run()).runAgentService(o));
  agent
    .command('status')
    .description('print the device, clock, store and domain status')
    .requiredOption('--config <file>', 'agent configuration (JSON)')
    .option('--json', 'machine-readable output')
    .action(async (o: AgentCliOptions) => (await run()).printStatus(o));
  agent
    .command('licenses')
    .description('list stored and held licenses: usable, expiry, chain, policy')
    .requiredOption('--config <file>', 'agent configuration (JSON)')
    .option('--kid <kid>', 'only licenses holding this key ID (hex or UUID)')
    .option('--content <id>', 'only licenses for this content id')
    .option('--json', 'machine-readable output')
    .action(async (o: AgentCliOptions & { kid?: string; content?: string }) =>
      (await run()).printLicenses(o),
    );
  agent
    .command('acquire')
    .description("acquire a license (pre-delivery): by key IDs, content id, or a file's pssh")
    .requiredOption('--config <file>', 'agent configuration (JSON)')
    .option('--kid <kid...>', 'key IDs (hex or UUID)')
    .option('--content <id>', 'operator content id')
    .option('--init <file>', 'an init segment or protected MP4 whose pssh names the keys')
    .option('--server <url>', 'license server for this request')
    .option('--custom-data <text>', "the application's custom data")
    .option('--persist', 'ask for an offline (persistable) license')
    .option('--json', 'machine-readable output')
    .action(
      async (
        o: AgentCliOptions & {
          kid?: string[];
          content?: string;
          init?: string;
          server?: string;
          customData?: string;
          persist?: boolean;
        },
      ) => (await run()).acquireLicense(o),
    );
  agent
    .command('release')
    .description('release a license: the server is told, then the record is deleted')
    .argument('<license-id>', 'the license id (see agent licenses)')
    .requiredOption('--config <file>', 'agent configuration (JSON)')
    .action(async (id: string, o: AgentCliOptions) => (await run()).releaseLicense(id, o));
  agent
    .command('play')
    .description("decrypt a protected MP4 with the agent's licenses, enforcing their policy")
    .argument('<input>', 'protected MP4 (fragmented or flat)')
    .requiredOption('-o, --output <file>', 'clear MP4 to write')
    .requiredOption('--config <file>', 'agent configuration (JSON)')
    .action(async (input: string, o: AgentCliOptions & { output: string }) =>
      (await run()).playFile(input, o),
    );
  const domain = agent.command('domain').description('join or leave a domain');
  domain
    .command('join')
    .argument('<account-id>', 'the account whose domain to join')
    .requiredOption('--config <file>', 'agent configuration (JSON)')
    .option('--name <friendly-name>', "this device's name in the domain")
    .action(async (account: string, o: AgentCliOptions & { name?: string }) =>
      (await run()).joinDomain(account, o),
    );
  domain
    .command('leave')
    .argument('[domain-id]', 'the domain to leave (default: the only one)')
    .requiredOption('--config <file>', 'agent configuration (JSON)')
    .action(async (id: string | undefined, o: AgentCliOptions) => (await run()).leaveDomain(id, o));
}
