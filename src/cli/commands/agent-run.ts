import { readFile } from 'node:fs/promises';
import { pino, type Logger } from 'pino';
import { Agent } from '../../agent/agent.js';
import { loadAgentConfig, type AgentConfig } from '../../agent/config.js';
import type { AgentEvents } from '../../agent/events.js';
import type { LicenseInfo } from '../../agent/license-manager.js';
import { formatPolicySummary } from '../../agent/policy/index.js';
import { isKeywardenError, kwError } from '../../errors/index.js';
import { writeFileAtomic } from '../../io/atomic-file.js';
import type { AgentCliOptions } from './agent.js';

/** The most a `keywarden agent play` input may be (it is decrypted in memory). */
const MAX_PLAY_BYTES = 1 << 30;

async function openAgent(o: AgentCliOptions, extra: Partial<AgentConfig> = {}): Promise<Agent> {
  const config = await loadAgentConfig(o.config);
  return Agent.create({ ...config, autoMaintenance: false, ...extra });
}

async function withAgent<T>(o: AgentCliOptions, fn: (agent: Agent) => Promise<T>): Promise<T> {
  const agent = await openAgent(o);
  try {
    return await fn(agent);
  } finally {
    await agent.close();
  }
}

const iso = (ms: number | undefined): string =>
  ms === undefined ? 'never' : new Date(ms).toISOString();

/** The events a service logs, and at which level. */
const LOGGED: Partial<Record<keyof AgentEvents, 'info' | 'warn' | 'error'>> = {
  individualizing: 'info',
  individualized: 'info',
  'hardware-changed': 'warn',
  'acquiring-license': 'info',
  'license-acquired': 'info',
  retrying: 'warn',
  'joining-domain': 'info',
  'renewing-domain': 'info',
  'domain-joined': 'info',
  'domain-left': 'info',
  renewing: 'info',
  renewed: 'info',
  'renewal-failed': 'warn',
  expired: 'info',
  'release-pending': 'info',
  released: 'info',
  'release-failed': 'warn',
  'clock-rollback': 'warn',
  revoked: 'warn',
  'store-problem': 'error',
  problem: 'error',
};

function logEvents(agent: Agent, log: Logger): void {
  for (const [event, level] of Object.entries(LOGGED) as [keyof AgentEvents, 'info'][]) {
    agent.on(event, (payload: unknown) => {
      const data = isKeywardenError(payload)
        ? { code: payload.code, number: payload.number, err: payload.message }
        : (payload as Record<string, unknown>);
      const err = (data as { error?: unknown }).error;
      log[level](
        {
          event,
          ...data,
          ...(isKeywardenError(err) && {
            error: { code: err.code, number: err.number, message: err.message },
          }),
        },
        event,
      );
    });
  }
}

/**
 * `keywarden agent run`: the agent as a service. Logs JSON lines (pino) on stdout; renews
 * licenses and retries pending releases on its maintenance timer; stops on SIGTERM/SIGINT.
 */
export async function runAgentService(o: AgentCliOptions): Promise<void> {
  const log = pino({ name: 'keywarden-agent' });
  const config = await loadAgentConfig(o.config);
  const agent = await Agent.create(config);
  logEvents(agent, log);
  const status = agent.status();
  log.info(
    {
      event: 'started',
      stateDir: config.stateDir,
      deviceId: status.deviceId,
      licenses: status.licensesStored,
      pendingReleases: status.pendingReleases.length,
    },
    'agent started',
  );
  // The agent's own timers do not hold the process open (a library must not); a service must.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  clearInterval(keepAlive);
  await agent.close();
  log.info({ event: 'stopped' }, 'agent stopped');
}

/** `keywarden agent status`. */
export async function printStatus(o: AgentCliOptions): Promise<void> {
  await withAgent(o, async (agent) => {
    const s = agent.status();
    if (o.json) {
      process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      return;
    }
    const lines = [
      `device:            ${s.deviceId ?? '(not individualized)'}`,
      `security level:    ${s.securityLevel}`,
      `trusted time:      ${s.clock.trusted ? iso(s.clock.nowMs) : 'not anchored yet'}${s.clock.estimated ? ' (estimated across a reboot)' : ''}${s.clock.rollbackDetected ? ' (wall clock rolled back!)' : ''}`,
      `stored licenses:   ${s.licensesStored}`,
      `pending releases:  ${s.pendingReleases.length === 0 ? 'none' : s.pendingReleases.join(', ')}`,
      `domains:           ${s.domains.length === 0 ? 'none' : s.domains.map((d) => `${d.domainId} (account ${d.accountId}, revision ${d.revision})`).join('; ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  });
}

/** One license as text. */
export function formatLicense(l: LicenseInfo): string {
  const chain =
    l.chain.role === 'leaf'
      ? `leaf of ${l.chain.roots.map((r) => `${r.id}${r.usable ? '' : ' (not valid)'}`).join(', ')}`
      : l.chain.role === 'root'
        ? `root${l.chain.leaves.length > 0 ? ` of ${l.chain.leaves.join(', ')}` : ''}`
        : 'simple';
  return [
    `${l.id}  ${l.usable ? 'USABLE' : l.status.toUpperCase()}${l.reason ? ` (${l.reason.number} ${l.reason.code})` : ''}`,
    `  content ${l.contentId || '-'}, ${l.type}${l.persisted ? ', stored' : ', memory only'}${l.state === 'release-pending' ? ', RELEASE PENDING' : ''}`,
    `  keys    ${l.kids.join(', ') || '(none: root license)'}`,
    `  chain   ${chain}`,
    `  until   ${iso(l.playableUntilMs)}${l.renewAtMs !== undefined ? `, renews ${iso(l.renewAtMs)}` : ''}`,
    `  played  ${l.playCount}×${l.firstPlayMs !== undefined ? `, first ${iso(l.firstPlayMs)}` : ''}`,
    `  policy  ${formatPolicySummary(l.policy).replaceAll('\n', '\n          ')}`,
  ].join('\n');
}

/** `keywarden agent licenses`. */
export async function printLicenses(
  o: AgentCliOptions & { kid?: string; content?: string },
): Promise<void> {
  if (o.kid && o.content) throw kwError('CLI_USAGE', 'give --kid or --content, not both');
  await withAgent(o, async (agent) => {
    const list = await agent.licenses.select(
      o.kid ?? (o.content !== undefined ? { contentId: o.content } : undefined),
    );
    if (o.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    else if (list.length === 0) process.stdout.write('no licenses\n');
    else process.stdout.write(`${list.map(formatLicense).join('\n\n')}\n`);
  });
}

/** `keywarden agent acquire`. */
export async function acquireLicense(
  o: AgentCliOptions & {
    kid?: string[];
    content?: string;
    init?: string;
    server?: string;
    customData?: string;
    persist?: boolean;
  },
): Promise<void> {
  if (!o.kid && !o.content && !o.init)
    throw kwError('CLI_USAGE', 'name the content: --kid, --content or --init');
  const initData = o.init ? await readInput(o.init, 16 << 20) : undefined;
  await withAgent(o, async (agent) => {
    const got = await agent.licenses.acquire({
      ...(o.kid && { keyIds: o.kid }),
      ...(o.content && { contentId: o.content }),
      ...(initData && { initData }),
      ...(o.server && { serverUrl: o.server }),
      ...(o.customData && { customData: o.customData }),
      persist: !!o.persist,
    });
    if (o.json) process.stdout.write(`${JSON.stringify(got, null, 2)}\n`);
    else
      process.stdout.write(
        `${formatLicense(got.license)}${got.customData ? `\n  server custom data: ${got.customData}` : ''}\n`,
      );
  });
}

/** `keywarden agent release`. */
export async function releaseLicense(id: string, o: AgentCliOptions): Promise<void> {
  await withAgent(o, async (agent) => {
    const r = await agent.licenses.remove(id);
    if (r.released) process.stdout.write(`released ${id}\n`);
    else
      process.stdout.write(
        `release of ${id} is pending (${r.error?.toUserString() ?? 'server unreachable'}); the agent retries it\n`,
      );
  });
}

/** `keywarden agent domain join`. */
export async function joinDomain(
  account: string,
  o: AgentCliOptions & { name?: string },
): Promise<void> {
  await withAgent(o, async (agent) => {
    const d = await agent.domain.join(account, o.name);
    process.stdout.write(
      `joined domain ${d.domainId} (account ${d.accountId}, revision ${d.revision})\n`,
    );
  });
}

/** `keywarden agent domain leave`. */
export async function leaveDomain(id: string | undefined, o: AgentCliOptions): Promise<void> {
  await withAgent(o, async (agent) => {
    const before = agent.domain.list();
    await agent.domain.leave(id);
    process.stdout.write(`left domain ${id ?? before[0]?.domainId ?? ''}\n`);
  });
}

/**
 * `keywarden agent play`: decrypts a protected MP4 with the agent's licenses (acquiring
 * missing ones), only as the policy allows; the output appears only when complete.
 */
export async function playFile(
  input: string,
  o: AgentCliOptions & { output: string },
): Promise<void> {
  const bytes = await readInput(input, MAX_PLAY_BYTES);
  await withAgent(o, async (agent) => {
    const session = await agent.openSession(bytes, { initDataType: 'mp4' });
    try {
      const clear = await session.decryptFragment(bytes);
      await writeFileAtomic(o.output, clear);
      process.stdout.write(`wrote ${o.output} (${clear.length} bytes)\n`);
    } finally {
      session.close();
    }
  });
}

async function readInput(file: string, max: number): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    throw kwError('IO_FAILED', `cannot read ${file}: ${(err as Error).message}`, { file }, err);
  }
  if (data.length > max) throw kwError('MEDIA_TOO_LARGE', `${file} exceeds ${max} bytes`);
  return data;
}
