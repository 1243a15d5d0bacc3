import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  BOARD_SERIAL,
  CPU_SERIAL,
  MACHINE_ID,
  fixedSource,
  type IdentitySource,
} from '../crypto/hardware-identity.js';
import type { KeyVault } from '../crypto/key-vault.js';
import type { TimeSource } from '../crypto/secure-clock.js';
import { isKeywardenError, kwError } from '../errors/index.js';
import { parseDurationMs } from '../io/durations.js';
import type { FileSystem } from '../io/fs.js';
import type { OutputBackend, OutputMonitor, OutputMonitorOptions } from '../output/index.js';
import { loadKmsScenario } from '../output/scenario.js';
import type { FleetConfig } from './fleet-link.js';
import type { ProtocolTransport } from './protocol-transport.js';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.js';

/** What a request filter sees: one outgoing request to the head-end. */
export interface OutgoingRequest {
  readonly url: string;
  /** Which service: 'provisioning', 'license' or 'domain'. */
  readonly service: 'provisioning' | 'license' | 'domain';
}

/**
 * Custom logic hook (DESIGN.md "Custom logic hooks"): extra HTTP headers per request, such
 * as an operator's auth token. May be async (a token refresh).
 */
export type RequestFilter = (
  req: OutgoingRequest,
) => Record<string, string> | Promise<Record<string, string>>;

/** Configuration of an {@link Agent} (the library form; files use {@link loadAgentConfig}). */
export interface AgentConfig {
  /** The state directory: key vault, license store, clock, domains. Created 0700. */
  readonly stateDir: string;
  /** The provisioning authority, e.g. https://headend.example/v1/provision. */
  readonly provisioningUrl: string;
  /** The operator root certificate (DER, PEM text, or parsed) every server chain must lead to. */
  readonly trustedRoot: Uint8Array | string | X509Certificate;
  /** License server override: takes precedence over the URL in the content's pssh. */
  readonly licenseServerUrl?: string;
  /** Domain controller used for `domains.join` when no server answer names one. */
  readonly domainUrl?: string;
  /** This agent's version (default: the package version). */
  readonly agentVersion?: string;
  /** The application this agent serves (application-restricted media), sent in requests. */
  readonly applicationId?: string;
  /** The device's name in domain member lists. */
  readonly friendlyName?: string;
  /** Hardware identity sources (default machine-id, board serial, CPU serial). */
  readonly identitySources?: readonly IdentitySource[];
  /**
   * The license store's rollback counter (docs/store.md). Put it on another partition than
   * `stateDir` (one a state-directory backup does not cover), so that restoring an old copy
   * of the whole state directory is detected. Default: `<stateDir>/licenses/rollback.kwc`.
   */
  readonly rollbackCounterFile?: string;
  /** The fleet channel (revocations, commands, status over MQTT); off when absent. */
  readonly fleet?: FleetConfig;
  /**
   * Output protection (docs/output-protection.md): which backend reads the connectors and
   * HDCP state. Default { backend: 'auto' }: libdrm when the addon has it and a DRM device
   * exists, else the state is unknown (licenses asking more than best effort are refused).
   */
  readonly output?: AgentOutputConfig;
  /** Key vault (default: the software vault in the state directory). */
  readonly vault?: KeyVault;
  /** Request filter for custom headers. */
  readonly requestFilter?: RequestFilter;
  /** Transport override (tests); HTTP by default. */
  readonly transport?: ProtocolTransport;
  /** Clock: wall, monotonic and boot id; injectable for tests. */
  readonly time?: TimeSource;
  /**
   * File system of the agent's state (key vault, secure clock, license store); default
   * node:fs. Injectable for tests (fault injection).
   */
  readonly fs?: FileSystem;
  /** Retries of license and domain requests. */
  readonly retry?: Partial<RetryPolicy>;
  /** Renew subscription roots this long before they expire, ms (default 1 h). */
  readonly rootRenewalLeadMs?: number;
  /** Longest wait between maintenance runs (renewals, pending releases), ms (default 60 s). */
  readonly maintenanceIntervalMs?: number;
  /** Start the maintenance timer (default true; tests drive `agent.maintain()` by hand). */
  readonly autoMaintenance?: boolean;
}

/**
 * The agent's output-protection settings ({@link AgentConfig.output}): the monitor's options
 * (backend, device, drmMaster, scenario, hdcpTimeoutMs, pollMs), or a monitor shared with
 * others (the daemon, tests), which the agent does not close.
 */
export type AgentOutputConfig = Omit<OutputMonitorOptions, 'openDevice' | 'now'> & {
  readonly monitor?: OutputMonitor;
};

/** Defaults filled in. */
export interface ResolvedAgentConfig extends AgentConfig {
  readonly trustedRoot: X509Certificate;
  readonly agentVersion: string;
  readonly retry: RetryPolicy;
  readonly rootRenewalLeadMs: number;
  readonly maintenanceIntervalMs: number;
}

/** The agent's version, from package.json. */
export const AGENT_VERSION = '0.1.0';

/** Parses the operator root from DER bytes, PEM text or a parsed certificate. */
export function parseTrustedRoot(root: AgentConfig['trustedRoot']): X509Certificate {
  if (root instanceof X509Certificate) return root;
  try {
    return new X509Certificate(typeof root === 'string' ? root : Buffer.from(root));
  } catch (err) {
    throw kwError('CONFIG_INVALID', 'trustedRoot is not an X.509 certificate', {}, err);
  }
}

function checkUrl(value: string | undefined, field: string, required: boolean): void {
  if (value === undefined || value === '') {
    if (required) throw kwError('CONFIG_INVALID', `${field} is required`, { field });
    return;
  }
  let u: URL;
  try {
    u = new URL(value);
  } catch (err) {
    throw kwError('CONFIG_INVALID', `${field} is not a URL: ${value}`, { field }, err);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw kwError('CONFIG_INVALID', `${field} must be http(s): ${value}`, { field });
}

/** Validates a configuration and fills the defaults. CONFIG_INVALID names the field. */
export function resolveAgentConfig(config: AgentConfig): ResolvedAgentConfig {
  if (!config.stateDir) throw kwError('CONFIG_INVALID', 'stateDir is required');
  checkUrl(config.provisioningUrl, 'provisioningUrl', true);
  checkUrl(config.licenseServerUrl, 'licenseServerUrl', false);
  checkUrl(config.domainUrl, 'domainUrl', false);
  const retry = { ...DEFAULT_RETRY, ...config.retry };
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1 || retry.attempts > 20)
    throw kwError('CONFIG_INVALID', 'retry.attempts must be an integer from 1 to 20');
  return {
    ...config,
    trustedRoot: parseTrustedRoot(config.trustedRoot),
    agentVersion: config.agentVersion ?? AGENT_VERSION,
    retry,
    rootRenewalLeadMs: config.rootRenewalLeadMs ?? 3_600_000,
    maintenanceIntervalMs: config.maintenanceIntervalMs ?? 60_000,
  };
}

/** The JSON configuration file (docs/configuration.md). Durations are strings like "1h". */
export interface AgentConfigFile {
  stateDir: string;
  provisioningUrl: string;
  /** Path to the operator root certificate (PEM or DER), relative to the config file. */
  trustedRoot: string;
  licenseServerUrl?: string;
  domainUrl?: string;
  applicationId?: string;
  friendlyName?: string;
  /** Identity source names: "machine-id", "board-serial", "cpu-serial", or {"name":..., "value":...}. */
  identitySources?: (string | { name: string; value: string })[];
  /** Static headers added to every request (an auth token, say). */
  requestHeaders?: Record<string, string>;
  /** The store's rollback counter, ideally on another partition than stateDir. */
  rollbackCounterFile?: string;
  retry?: { attempts?: number; baseDelay?: string; maxDelay?: string };
  rootRenewalLead?: string;
  maintenanceInterval?: string;
  /** The fleet channel; TLS files are paths relative to the config file. */
  fleet?: {
    url: string;
    topicPrefix?: string;
    protocolVersion?: 4 | 5;
    pullUrl?: string;
    username?: string;
    password?: string;
    tls?: { ca?: string; cert?: string; key?: string; servername?: string };
    /** "refuse" (default): no new licenses past the list's next update; "allow". */
    whenStale?: 'refuse' | 'allow';
  };
  /** Output protection; the scenario path is relative to the config file. */
  output?: {
    backend?: OutputBackend;
    device?: string;
    drmMaster?: 'keep' | 'drop';
    scenario?: string;
    hdcpTimeout?: string;
    pollInterval?: string;
  };
}

const KNOWN_SOURCES: Record<string, IdentitySource> = {
  'machine-id': MACHINE_ID,
  'board-serial': BOARD_SERIAL,
  'cpu-serial': CPU_SERIAL,
};

const FILE_KEYS = new Set([
  'stateDir',
  'provisioningUrl',
  'trustedRoot',
  'licenseServerUrl',
  'domainUrl',
  'applicationId',
  'friendlyName',
  'identitySources',
  'requestHeaders',
  'rollbackCounterFile',
  'retry',
  'rootRenewalLead',
  'maintenanceInterval',
  'fleet',
  'output',
  '$comment',
]);

function str(v: unknown, field: string, required = false): string | undefined {
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || (required && v === ''))
    throw kwError('CONFIG_INVALID', `${field} must be a${required ? ' non-empty' : ''} string`, {
      field,
    });
  return v;
}

function identitySources(v: unknown): IdentitySource[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0)
    throw kwError('CONFIG_INVALID', 'identitySources must be a non-empty list');
  return v.map((s: unknown, i) => {
    if (typeof s === 'string') {
      const known = KNOWN_SOURCES[s];
      if (!known)
        throw kwError('CONFIG_INVALID', `identitySources[${i}]: unknown source '${s}'`, {
          known: Object.keys(KNOWN_SOURCES),
        });
      return known;
    }
    const o = s as { name?: unknown; value?: unknown };
    return fixedSource(
      str(o?.name, `identitySources[${i}].name`, true)!,
      str(o?.value, `identitySources[${i}].value`, true),
    );
  });
}

function duration(v: unknown, field: string): number | undefined {
  const s = str(v, field);
  return s === undefined ? undefined : parseDurationMs(s, 'CONFIG_INVALID', field);
}

async function readPem(base: string, file: string | undefined, field: string) {
  if (file === undefined) return undefined;
  const p = path.resolve(base, file);
  try {
    return await readFile(p);
  } catch (err) {
    throw kwError('CONFIG_INVALID', `${field}: cannot read ${p}`, { field }, err);
  }
}

const OUTPUT_BACKENDS: readonly OutputBackend[] = ['auto', 'libdrm', 'scripted', 'none'];

async function outputSection(v: unknown, base: string): Promise<AgentOutputConfig> {
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw kwError('CONFIG_INVALID', 'output must be an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['backend', 'device', 'drmMaster', 'scenario', 'hdcpTimeout', 'pollInterval'].includes(k))
      throw kwError('CONFIG_INVALID', `unknown field 'output.${k}'`, { field: `output.${k}` });
  const backend = o.backend ?? 'auto';
  if (!OUTPUT_BACKENDS.includes(backend as OutputBackend))
    throw kwError('CONFIG_INVALID', `output.backend must be one of ${OUTPUT_BACKENDS.join(', ')}`, {
      field: 'output.backend',
    });
  if (o.drmMaster !== undefined && o.drmMaster !== 'keep' && o.drmMaster !== 'drop')
    throw kwError('CONFIG_INVALID', 'output.drmMaster must be "keep" or "drop"', {
      field: 'output.drmMaster',
    });
  const scenarioPath = str(o.scenario, 'output.scenario');
  if (backend === 'scripted' && scenarioPath === undefined)
    throw kwError('CONFIG_INVALID', 'output.backend "scripted" needs output.scenario', {
      field: 'output.scenario',
    });
  const hdcpTimeoutMs = duration(o.hdcpTimeout, 'output.hdcpTimeout');
  const pollMs = duration(o.pollInterval, 'output.pollInterval');
  return {
    backend: backend as OutputBackend,
    ...(o.device !== undefined && { device: str(o.device, 'output.device', true)! }),
    ...(o.drmMaster !== undefined && { drmMaster: o.drmMaster }),
    ...(scenarioPath !== undefined && {
      scenario: await loadKmsScenario(path.resolve(base, scenarioPath)),
    }),
    ...(hdcpTimeoutMs !== undefined && { hdcpTimeoutMs }),
    ...(pollMs !== undefined && { pollMs }),
  };
}

async function fleetSection(v: unknown, base: string): Promise<FleetConfig> {
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw kwError('CONFIG_INVALID', 'fleet must be an object');
  const f = v as Record<string, unknown>;
  for (const k of Object.keys(f))
    if (
      ![
        'url',
        'topicPrefix',
        'protocolVersion',
        'pullUrl',
        'username',
        'password',
        'tls',
        'whenStale',
      ].includes(k)
    )
      throw kwError('CONFIG_INVALID', `unknown field 'fleet.${k}'`, { field: `fleet.${k}` });
  const url = str(f.url, 'fleet.url', true)!;
  if (!/^(mqtts?|wss?):\/\//.test(url))
    throw kwError('CONFIG_INVALID', `fleet.url must be mqtt://, mqtts://, ws:// or wss://: ${url}`);
  if (f.protocolVersion !== undefined && f.protocolVersion !== 4 && f.protocolVersion !== 5)
    throw kwError('CONFIG_INVALID', 'fleet.protocolVersion must be 4 (MQTT 3.1.1) or 5');
  checkUrl(str(f.pullUrl, 'fleet.pullUrl'), 'fleet.pullUrl', false);
  if (f.whenStale !== undefined && f.whenStale !== 'refuse' && f.whenStale !== 'allow')
    throw kwError('CONFIG_INVALID', 'fleet.whenStale must be "refuse" or "allow"', {
      field: 'fleet.whenStale',
    });
  const tlsRaw = (f.tls ?? {}) as Record<string, unknown>;
  const [ca, cert, key] = await Promise.all([
    readPem(base, str(tlsRaw.ca, 'fleet.tls.ca'), 'fleet.tls.ca'),
    readPem(base, str(tlsRaw.cert, 'fleet.tls.cert'), 'fleet.tls.cert'),
    readPem(base, str(tlsRaw.key, 'fleet.tls.key'), 'fleet.tls.key'),
  ]);
  const servername = str(tlsRaw.servername, 'fleet.tls.servername');
  return {
    url,
    ...(f.topicPrefix !== undefined && { topicPrefix: str(f.topicPrefix, 'fleet.topicPrefix')! }),
    ...(f.protocolVersion !== undefined && { protocolVersion: f.protocolVersion }),
    ...(f.pullUrl !== undefined && { pullUrl: str(f.pullUrl, 'fleet.pullUrl')! }),
    ...(f.username !== undefined && { username: str(f.username, 'fleet.username')! }),
    ...(f.password !== undefined && { password: str(f.password, 'fleet.password')! }),
    ...(f.whenStale !== undefined && { whenStale: f.whenStale }),
    ...((ca || cert || key || servername) && {
      tls: {
        ...(ca && { ca }),
        ...(cert && { cert }),
        ...(key && { key }),
        ...(servername && { servername }),
      },
    }),
  };
}

/**
 * Reads and validates a JSON agent configuration file. Relative paths (stateDir,
 * trustedRoot) are relative to the file. Every problem is CONFIG_INVALID naming the field;
 * unknown fields are refused (a typo must not silently fall back to a default).
 */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw kwError('CONFIG_INVALID', `cannot read the config file ${file}`, { file }, err);
  }
  if (text.length > 1 << 20) throw kwError('CONFIG_INVALID', `${file} is larger than 1 MiB`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw kwError('CONFIG_INVALID', `${file} is not JSON: ${(err as Error).message}`, {}, err);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw kwError('CONFIG_INVALID', `${file} must hold a JSON object`);
  for (const k of Object.keys(raw))
    if (!FILE_KEYS.has(k)) throw kwError('CONFIG_INVALID', `unknown field '${k}'`, { field: k });
  const base = path.dirname(path.resolve(file));
  const rootPath = path.resolve(base, str(raw.trustedRoot, 'trustedRoot', true)!);
  let root: Buffer;
  try {
    root = await readFile(rootPath);
  } catch (err) {
    throw kwError('CONFIG_INVALID', `cannot read trustedRoot ${rootPath}`, {}, err);
  }
  const headers = raw.requestHeaders;
  if (
    headers !== undefined &&
    (typeof headers !== 'object' ||
      headers === null ||
      Object.values(headers).some((h) => typeof h !== 'string'))
  )
    throw kwError('CONFIG_INVALID', 'requestHeaders must map header names to strings');
  const retryRaw = (raw.retry ?? {}) as Record<string, unknown>;
  const retry: Partial<RetryPolicy> = {
    ...(retryRaw.attempts !== undefined && { attempts: Number(retryRaw.attempts) }),
    ...(retryRaw.baseDelay !== undefined && {
      baseDelayMs: duration(retryRaw.baseDelay, 'retry.baseDelay'),
    }),
    ...(retryRaw.maxDelay !== undefined && {
      maxDelayMs: duration(retryRaw.maxDelay, 'retry.maxDelay'),
    }),
  };
  const text2 = root.toString('latin1');
  const config: AgentConfig = {
    stateDir: path.resolve(base, str(raw.stateDir, 'stateDir', true)!),
    provisioningUrl: str(raw.provisioningUrl, 'provisioningUrl', true)!,
    trustedRoot: text2.includes('-----BEGIN CERTIFICATE-----') ? text2 : new Uint8Array(root),
    licenseServerUrl: str(raw.licenseServerUrl, 'licenseServerUrl'),
    domainUrl: str(raw.domainUrl, 'domainUrl'),
    applicationId: str(raw.applicationId, 'applicationId'),
    friendlyName: str(raw.friendlyName, 'friendlyName'),
    ...(raw.rollbackCounterFile !== undefined && {
      rollbackCounterFile: path.resolve(base, str(raw.rollbackCounterFile, 'rollbackCounterFile')!),
    }),
    identitySources: identitySources(raw.identitySources),
    ...(headers !== undefined && {
      requestFilter: () => ({ ...(headers as Record<string, string>) }),
    }),
    retry,
    rootRenewalLeadMs: duration(raw.rootRenewalLead, 'rootRenewalLead'),
    maintenanceIntervalMs: duration(raw.maintenanceInterval, 'maintenanceInterval'),
    ...(raw.fleet !== undefined && { fleet: await fleetSection(raw.fleet, base) }),
    ...(raw.output !== undefined && { output: await outputSection(raw.output, base) }),
  };
  try {
    resolveAgentConfig(config);
  } catch (err) {
    if (isKeywardenError(err)) throw kwError(err.code, `${file}: ${err.message}`, err.details, err);
    throw err;
  }
  return config;
}
