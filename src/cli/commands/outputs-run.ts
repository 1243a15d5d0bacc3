import { Agent } from '../../agent/agent.js';
import { loadAgentConfig } from '../../agent/config.js';
import { kwError } from '../../errors/index.js';
import {
  OPL_TABLES,
  OutputMonitor,
  decideOutput,
  describeDecision,
  explainLicense,
  loadKmsScenario,
  requirementsOf,
  tracksOf,
  type OutputBackend,
  type OutputMonitorOptions,
  type OutputState,
} from '../../output/index.js';
import type { OplKind, Track } from '../../output/types.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { OutputsCliOptions } from './outputs.js';

const BACKENDS: readonly OutputBackend[] = ['auto', 'libdrm', 'scripted', 'none'];
const CGMS_A: Record<string, keywarden.v1.OutputProtection.CgmsA> = {
  'copy-free': keywarden.v1.OutputProtection.CgmsA.CGMS_A_COPY_FREE,
  'copy-once': keywarden.v1.OutputProtection.CgmsA.CGMS_A_COPY_ONCE,
  'copy-never': keywarden.v1.OutputProtection.CgmsA.CGMS_A_COPY_NEVER,
};

/** The OPL tables `keywarden outputs` walks when no license is given. */
const TABLES: readonly { kind: OplKind; field: string; track: Track; label: string }[] = [
  { kind: 'analog-video', field: 'analogVideoOpl', track: 'video', label: 'analog video' },
  {
    kind: 'uncompressed-digital-video',
    field: 'uncompressedDigitalVideoOpl',
    track: 'video',
    label: 'uncompressed digital video',
  },
  {
    kind: 'compressed-digital-audio',
    field: 'compressedDigitalAudioOpl',
    track: 'audio',
    label: 'digital audio',
  },
];

function uint(v: string, flag: string): number {
  if (!/^\d{1,6}$/.test(v)) throw kwError('CLI_USAGE', `${flag} takes a number (e.g. 150)`);
  return Number(v);
}

/** A license holding only the output requirements the flags name; undefined when none do. */
function licenseFromFlags(o: OutputsCliOptions): keywarden.v1.ILicense | undefined {
  const op: keywarden.v1.IOutputProtection = {};
  if (o.oplAnalogVideo) op.analogVideoOpl = uint(o.oplAnalogVideo, '--opl-analog-video');
  if (o.oplUncompressedVideo)
    op.uncompressedDigitalVideoOpl = uint(o.oplUncompressedVideo, '--opl-uncompressed-video');
  if (o.oplCompressedAudio)
    op.compressedDigitalAudioOpl = uint(o.oplCompressedAudio, '--opl-compressed-audio');
  if (o.oplUncompressedAudio)
    op.uncompressedDigitalAudioOpl = uint(o.oplUncompressedAudio, '--opl-uncompressed-audio');
  if (o.hdcp) {
    if (!/^\d+(\.\d+)?$/.test(o.hdcp))
      throw kwError('CLI_USAGE', '--hdcp takes a version: 1.4, 2.2');
    op.hdcpVersion = o.hdcp;
  }
  if (o.hdcpType1) op.hdcpType1 = true;
  if (o.cgmsa) {
    const v = CGMS_A[o.cgmsa];
    if (v === undefined)
      throw kwError('CLI_USAGE', `--cgmsa is one of ${Object.keys(CGMS_A).join(', ')}`);
    op.cgmsA = v;
  }
  if (o.disableAnalog) op.disableAnalogOutput = true;
  const policy: keywarden.v1.IPolicy = { outputProtection: op };
  if (o.maxResolution) {
    const m = /^(\d{1,5})x(\d{1,5})$/.exec(o.maxResolution);
    if (!m) throw kwError('CLI_USAGE', '--max-resolution takes WxH, e.g. 1280x720');
    policy.maxWidth = Number(m[1]);
    policy.maxHeight = Number(m[2]);
  }
  const any = Object.keys(op).length > 0 || o.maxResolution !== undefined;
  return any ? { policy, keys: [] } : undefined;
}

async function monitorSettings(o: OutputsCliOptions): Promise<OutputMonitorOptions> {
  if (o.backend !== undefined && !BACKENDS.includes(o.backend as OutputBackend))
    throw kwError('CLI_USAGE', `--backend is one of ${BACKENDS.join(', ')}`);
  const fromConfig = o.config ? ((await loadAgentConfig(o.config)).output ?? {}) : {};
  const backend = (o.backend as OutputBackend | undefined) ?? fromConfig.backend ?? 'auto';
  const scenario = o.scenario ? await loadKmsScenario(o.scenario) : fromConfig.scenario;
  if (backend === 'scripted' && !scenario)
    throw kwError('CLI_USAGE', '--backend scripted needs --scenario FILE');
  return {
    ...fromConfig,
    backend,
    ...(o.device && { device: o.device }),
    ...(scenario && { scenario }),
  };
}

async function storedLicense(o: OutputsCliOptions): Promise<keywarden.v1.ILicense> {
  if (!o.config) throw kwError('CLI_USAGE', '--license needs --config (the agent that holds it)');
  const config = await loadAgentConfig(o.config);
  const agent = await Agent.create({
    ...config,
    autoMaintenance: false,
    output: { backend: 'none' },
  });
  try {
    const license = await agent.licenses.licenseOf(o.license!);
    if (!license) throw kwError('LICENSE_NOT_FOUND', `no license ${o.license} on this device`);
    return license;
  } finally {
    await agent.close();
  }
}

function connectorLines(state: OutputState): string[] {
  if (!state.known) return [`  output state unknown: ${state.reason}`];
  if (state.connectors.length === 0) return ['  (no connectors)'];
  return state.connectors.map((c) => {
    const mode = c.mode ? `${c.mode.width}x${c.mode.height}@${c.mode.refresh}` : '-';
    const hdcp =
      c.contentProtection === 'unsupported'
        ? 'HDCP unsupported'
        : `HDCP ${c.contentProtection}${c.hdcpContentType === 'unsupported' ? '' : ` (${c.hdcpContentType})`}`;
    return [
      `  ${c.name.padEnd(13)}`,
      c.connection.padEnd(13),
      (c.active ? 'active' : 'inactive').padEnd(9),
      mode.padEnd(16),
      hdcp.padEnd(26),
      `sink ${c.sink}`,
      c.cgmsA ? '  CGMS-A' : '',
    ].join('');
  });
}

/** What each row of the OPL tables would decide on `state` (no license given). */
function tableRows(state: OutputState) {
  return TABLES.flatMap((t) =>
    OPL_TABLES[t.kind].map((row) => {
      const value = row.upTo ?? Number(/\d+/.exec(row.values)?.[0] ?? 0);
      const d = decideOutput(
        requirementsOf({ policy: { outputProtection: { [t.field]: value } } }),
        state,
        t.track,
      );
      return {
        table: t.label,
        values: row.values,
        level: row.level,
        action: d.action,
        ...(d.error && { code: d.error.number, error: d.error.code, reason: d.error.message }),
      };
    }),
  );
}

function report(monitor: OutputMonitor, license: keywarden.v1.ILicense | undefined) {
  const state = monitor.state;
  if (!license) return { source: monitor.describe(), state, levels: tableRows(state) };
  const req = requirementsOf(license);
  return {
    source: monitor.describe(),
    state,
    requirements: explainLicense(req, state),
    decisions: tracksOf(license).map((t) => decideOutput(req, state, t)),
  };
}

function printText(monitor: OutputMonitor, license: keywarden.v1.ILicense | undefined): void {
  const state = monitor.state;
  const lines = [
    `outputs: ${monitor.describe()}${state.known ? `, DRM master: ${state.master ? 'yes' : 'no'}` : ''}`,
    ...connectorLines(state),
    '',
  ];
  if (!license) {
    lines.push('what each output protection level would decide on these outputs:');
    for (const r of tableRows(state))
      lines.push(
        `  ${r.table.padEnd(27)} ${r.values.padEnd(8)} ${r.level.padEnd(13)} ${r.action}` +
          (r.code ? ` (${r.code} ${r.error})` : ''),
      );
    lines.push('  (pending: protection would be requested first; best effort plays once tried)');
  } else {
    const req = requirementsOf(license);
    lines.push("the license's requirements, each alone:");
    for (const r of explainLicense(req, state).filter((x) => x.set))
      lines.push(
        `  ${r.requirement.padEnd(32)} ${r.value.padEnd(11)} ${(r.level ?? '').padEnd(13)} ${r.action}` +
          (r.code ? ` (${r.code})` : ''),
      );
    lines.push('', 'together:');
    for (const t of tracksOf(license)) lines.push(describeDecision(decideOutput(req, state, t)));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `keywarden outputs`. */
export async function runOutputs(o: OutputsCliOptions): Promise<void> {
  const settings = await monitorSettings(o);
  const license = o.license ? await storedLicense(o) : licenseFromFlags(o);
  // A console command never holds the display.
  const monitor = OutputMonitor.open({ ...settings, drmMaster: 'drop' });
  if (!o.watch) {
    try {
      if (o.json) process.stdout.write(`${JSON.stringify(report(monitor, license), null, 2)}\n`);
      else printText(monitor, license);
    } finally {
      monitor.close();
    }
    return;
  }
  const emit = (event: string, extra: Record<string, unknown> = {}): void => {
    const at = new Date().toISOString();
    if (o.json) process.stdout.write(`${JSON.stringify({ at, event, ...extra })}\n`);
  };
  monitor.on('problem', (e) => {
    emit('problem', { code: e.number, error: e.code, message: e.message });
    if (!o.json) process.stderr.write(`keywarden: ${e.number} ${e.code}: ${e.message}\n`);
  });
  monitor.on('incident', (i) => {
    emit('incident', { connector: i.connector, code: i.error.number, error: i.error.code });
    if (!o.json)
      process.stdout.write(
        `${new Date().toISOString()} ${i.connector}: ${i.error.number} ${i.error.code}: ${i.error.message}\n`,
      );
  });
  monitor.on('change', () => {
    if (o.json) emit('change', report(monitor, license));
    else {
      process.stdout.write(`\n${new Date().toISOString()} outputs changed\n`);
      printText(monitor, license);
    }
  });
  if (o.json) emit('state', report(monitor, license));
  else printText(monitor, license);
  monitor.watch(true);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  monitor.close();
}
