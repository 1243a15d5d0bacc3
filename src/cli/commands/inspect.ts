import type { Command } from 'commander';
import type {
  EncryptionSummary,
  FragmentSummary,
  InspectReport,
  PsshSummary,
  TrackSummary,
} from '../../media/inspect.js';

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function seconds(duration: number, timescale: number): string {
  return timescale > 0 ? `${(duration / timescale).toFixed(2)} s` : '? s';
}

function encryption(e: EncryptionSummary): string {
  if (!e.isProtected) return 'not protected';
  const iv = e.constantIv ? `constant IV ${e.constantIv}` : `IV ${e.ivSize} bytes`;
  return [`KID ${e.kid}`, iv, ...(e.pattern ? [`pattern ${e.pattern}`] : [])].join(', ');
}

function trackLines(t: TrackSummary): string[] {
  const media =
    t.width !== undefined
      ? `${t.width}x${t.height}`
      : t.channels !== undefined
        ? `${t.channels} ch ${t.sampleRate} Hz`
        : '';
  const stored = t.format !== t.codec ? ` (stored as ${t.format})` : '';
  const head = `  #${t.id} ${t.handler} ${t.codec}${stored} ${media} | ${t.sampleCount} samples, ${seconds(t.duration, t.timescale)}, timescale ${t.timescale}, ${t.language}`;
  const p = t.protection;
  if (!p) return [head.replace(/ +\|/, ' |'), '     clear'];
  const scheme = `${p.scheme}${p.schemeVersion ? ` ${p.schemeVersion}` : ''}${p.piffAlgorithm !== undefined ? ` (PIFF AlgorithmID ${p.piffAlgorithm})` : ''}`;
  const lines = [
    head.replace(/ +\|/, ' |'),
    `     encrypted: ${scheme}, ${p.defaults ? encryption(p.defaults) : 'no tenc'}`,
  ];
  p.groups.forEach((g, i) => lines.push(`     seig group ${i + 1}: ${encryption(g)}`));
  return lines;
}

function psshLines(p: PsshSummary): string[] {
  const lines = [
    `  ${p.system} ${p.systemId} v${p.version}${p.piff ? ' (PIFF uuid)' : ''} in ${p.location}, ${p.dataSize} bytes of data`,
  ];
  if (p.kids.length > 0) lines.push(`     KIDs: ${p.kids.join(', ')}`);
  const k = p.keywarden;
  if (k) {
    lines.push(`     keywarden data: KIDs ${k.keyIds.join(', ') || 'none'}`);
    if (k.contentId) lines.push(`     content id: ${k.contentId}`);
    if (k.licenseUrl) lines.push(`     license URL: ${k.licenseUrl}`);
    if (k.protectionScheme) lines.push(`     scheme hint: ${k.protectionScheme}`);
    if (k.policyHint) lines.push(`     policy hint: ${k.policyHint}`);
  }
  if (p.dataError) lines.push(`     data not decodable: ${p.dataError}`);
  return lines;
}

function fragmentLines(list: readonly FragmentSummary[]): string[] {
  if (list.length === 0) return [];
  const first = list[0]!.sequenceNumber;
  const last = list[list.length - 1]!.sequenceNumber;
  const rotating = list.filter((f) => f.tracks.some((t) => t.keyRotation)).length;
  const kids = new Set(list.flatMap((f) => f.tracks.flatMap((t) => t.kids)));
  const lines = [
    `Fragments: ${list.length} (sequence ${first}-${last}); key rotation in ${rotating}`,
  ];
  if (kids.size > 0) lines.push(`  KIDs named by fragments: ${[...kids].join(', ')}`);
  return lines;
}

/** The human-readable report. */
export function formatInspectReport(r: InspectReport): string {
  const brands = r.brands
    ? `, brands ${r.brands.majorBrand} (${r.brands.compatibleBrands.join(', ')})`
    : '';
  const lines = [
    `${r.file}: ${bytes(r.size)}, ${r.fragmented ? 'fragmented' : 'flat'}, ${r.duration.toFixed(2)} s${brands}`,
    r.encrypted ? 'Encrypted' : 'Not encrypted',
    'Tracks:',
    ...r.tracks.flatMap(trackLines),
  ];
  if (r.pssh.length > 0) lines.push('Protection systems (pssh):', ...r.pssh.flatMap(psshLines));
  lines.push(...fragmentLines(r.fragments.list));
  if (r.segmentIndexes > 0) lines.push(`Segment indexes (sidx): ${r.segmentIndexes}`);
  return `${lines.join('\n')}\n`;
}

/** Registers `keywarden inspect FILE [--json]`. */
export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show the tracks, encryption, pssh boxes and fragments of an MP4')
    .argument('<file>', 'MP4 file (flat, fragmented, init or media segment)')
    .option('--json', 'print the full report as JSON, with a per-fragment list')
    .action(async (file: string, flags: { json?: boolean }) => {
      const { inspectFile } = await import('../../media/inspect.js'); // loaded on use: fast start-up
      const report = await inspectFile(file);
      process.stdout.write(
        flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspectReport(report),
      );
    });
}
