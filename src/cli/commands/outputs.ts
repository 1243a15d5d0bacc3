import type { Command } from 'commander';

/** Options of `keywarden outputs`. */
export interface OutputsCliOptions {
  readonly json?: boolean;
  readonly watch?: boolean;
  readonly backend?: string;
  readonly device?: string;
  readonly scenario?: string;
  readonly config?: string;
  readonly license?: string;
  readonly oplAnalogVideo?: string;
  readonly oplUncompressedVideo?: string;
  readonly oplCompressedAudio?: string;
  readonly oplUncompressedAudio?: string;
  readonly hdcp?: string;
  readonly hdcpType1?: boolean;
  readonly cgmsa?: string;
  readonly disableAnalog?: boolean;
  readonly maxResolution?: string;
}

/**
 * `keywarden outputs`: the box's connectors and their protection (DRM/KMS), and what each
 * output protection level, or a given license, would decide on them now. `--watch` follows
 * hot-plug and HDCP changes. docs/output-protection.md.
 */
export function registerOutputs(program: Command): void {
  program
    .command('outputs')
    .description(
      'show the connectors, their HDCP state, and what a license (or each OPL level) would decide',
    )
    .option('--json', 'machine-readable output (with --watch: one JSON object per line)')
    .option('--watch', 'keep running and report every output change and incident')
    .option('--backend <name>', 'auto | libdrm | scripted | none (default: config, else auto)')
    .option('--device <path>', 'DRM device (default: the first /dev/dri/card*)')
    .option('--scenario <file>', 'scripted backend scenario (JSON, docs/kms.md)')
    .option('--config <file>', 'agent configuration: its output settings and license store')
    .option('--license <id>', 'decide for this stored license (needs --config)')
    .option('--opl-analog-video <n>', 'decide for this minimum analog video OPL')
    .option(
      '--opl-uncompressed-video <n>',
      'decide for this minimum uncompressed digital video OPL',
    )
    .option('--opl-compressed-audio <n>', 'decide for this minimum compressed digital audio OPL')
    .option(
      '--opl-uncompressed-audio <n>',
      'decide for this minimum uncompressed digital audio OPL',
    )
    .option('--hdcp <version>', 'decide for an explicit minimum HDCP version (1.4, 2.2, 2.3)')
    .option('--hdcp-type1', 'decide for HDCP content type 1')
    .option(
      '--cgmsa <value>',
      'decide for an explicit CGMS-A value: copy-free, copy-once, copy-never',
    )
    .option('--disable-analog', 'decide for "analog outputs must be off"')
    .option('--max-resolution <WxH>', 'decide for a picture cap, e.g. 1280x720')
    .action(async (o: OutputsCliOptions) => (await import('./outputs-run.js')).runOutputs(o));
}
