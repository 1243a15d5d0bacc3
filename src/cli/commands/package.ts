import { readFileSync, statSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { kwError } from '../../errors/index.js';
import type { PackageReport } from '../../media/package/packager.js';
import { DEFAULT_FRAGMENT_MS, PACKAGE_SCHEMES } from '../../media/package/package-options.js';
import type { ContentKey } from '../../media/package/key-schedule.js';
import type { CencScheme } from '../../media/sample-crypto.js';
import { collectKey, type KeyArg } from '../key-arg.js';
import { progressBar } from '../progress.js';

const HELP = `
Output: a fragmented MP4 (init segment, one sidx, then moof+mdat fragments, one traf per
track in each moof) encrypted with ISO/IEC 23001-7 Common Encryption. The moov carries
encv/enca sample entries with sinf/tenc, a keywarden pssh (KIDs, content id, license URL,
scheme) and the W3C common pssh (KIDs only).

Tracks:
  video    H.264 (avc1/avc3) or H.265 (hvc1/hev1): subsample encryption, one subsample per
           NAL unit; NAL and slice headers and non-VCL NAL units stay clear.
  audio    AAC (mp4a): full-sample encryption.
  other    subtitles, timed metadata, timecode...: copied clear.
  Video or audio in any other codec is refused (error 7014): a track silently left clear
  in a file meant to be protected is worse than no file.

Schemes:
  cenc   AES-CTR; 8-byte per-sample IVs (16 with a 16-byte --iv).
  cens   AES-CTR, 1:9 pattern on video; 8/16-byte per-sample IVs.
  cbc1   AES-CBC; 16-byte per-sample IVs.
  cbcs   AES-CBC, 1:9 pattern on video; one 16-byte constant IV in tenc.
  IVs are random unless --iv is given (then track n counts up from --iv with n added to
  its first byte, so that no two tracks share IVs).

Keys (KID:KEY, 16 bytes each, hex or base64):
  --key             every encrypted track, and the KID written to tenc.
  --audio-key       audio tracks use this key instead (never rotated).
  --rotation-key    repeatable: key rotation. With --rotate-every N, fragments take turns in
                    periods of N: the first period uses --key, the next the first
                    --rotation-key, and so on, cycling. Rotated fragments name their KID in
                    an sgpd/sbgp 'seig' sample group; every KID is listed in the pssh boxes.

Live streams (docs/key-rotation.md):
  --pssh-in-moof    every moof carries a keywarden pssh and a W3C common pssh listing the
                    KID of its key period and of the next one, so that a player acquires
                    the next key a period ahead. seig groups still name each fragment's KID.
  --embedded-license FILE
                    repeatable, with --pssh-in-moof: one per key period, in order; the
                    file (a signed EMBEDDED_LICENSE envelope, as 'keywarden headend live
                    license' writes it) goes into the keywarden pssh of that period's
                    fragments. 'keywarden headend live package' does all of this in one go.

Example:
  keywarden package clear.mp4 protected.mp4 --scheme cbcs \\
    --key 00112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef \\
    --license-url https://license.example.com/v1 --fragment-ms 4000
`;

/** Raw option values as commander hands them over. */
interface PackageCliOptions {
  scheme: CencScheme;
  key?: KeyArg[];
  audioKey?: KeyArg[];
  rotationKey?: KeyArg[];
  rotateEvery?: string;
  iv?: string;
  fragmentMs: string;
  contentId?: string;
  licenseUrl?: string;
  policyHint?: string;
  psshInMoof?: boolean;
  embeddedLicense?: string[];
  json?: boolean;
}

/** Registers `keywarden package IN OUT`. */
export function registerPackage(program: Command): void {
  program
    .command('package')
    .description('encrypt a clear MP4 into fragmented Common Encryption (cenc, cbcs, cens, cbc1)')
    .argument('<input>', 'clear MP4, flat or fragmented (H.264/H.265 video, AAC audio)')
    .argument('<output>', 'the encrypted, fragmented MP4 to write (appears only when complete)')
    .addOption(
      new Option('--scheme <scheme>', 'protection scheme')
        .choices(PACKAGE_SCHEMES)
        .makeOptionMandatory(),
    )
    .option('--key <KID:KEY>', 'content key for every track (required)', collectKey)
    .option('--audio-key <KID:KEY>', 'a separate key for audio tracks', collectKey)
    .option(
      '--rotation-key <KID:KEY>',
      'a key that takes turns with --key (repeatable)',
      collectKey,
    )
    .option('--rotate-every <N>', 'fragments per key period with --rotation-key', '1')
    .option(
      '--iv <HEX>',
      'first IV: 8 bytes (cenc, cens) or 16 bytes (any scheme); random by default',
    )
    .option(
      '--fragment-ms <N>',
      'target fragment duration in milliseconds',
      String(DEFAULT_FRAGMENT_MS),
    )
    .option('--content-id <ID>', "content id for keywarden's pssh (default: the input file name)")
    .option('--license-url <URL>', "license server URL for keywarden's pssh")
    .option('--policy-hint <NAME>', 'policy name suggested to the license server')
    .option('--pssh-in-moof', 'live: pssh boxes in every moof naming the current and next KIDs')
    .option(
      '--embedded-license <FILE>',
      'live: embedded leaf license for one key period (repeatable, one per period, in order)',
      collectText,
    )
    .option('--json', 'print the report as JSON')
    .addHelpText('after', HELP)
    .action(async (input: string, output: string, o: PackageCliOptions) =>
      runPackage(input, output, o),
    );
}

async function runPackage(input: string, output: string, o: PackageCliOptions): Promise<void> {
  const request = {
    input,
    output,
    scheme: o.scheme,
    key: onlyKey(o.key, '--key', true),
    ...optionalKey(o.audioKey, '--audio-key'),
    rotationKeys: (o.rotationKey ?? []).map((k) => withKid(k, '--rotation-key')),
    rotateEvery: rotateEvery(o),
    ...(o.iv !== undefined && { iv: parseIv(o.iv) }),
    fragmentMs: integer(o.fragmentMs, '--fragment-ms'),
    ...(o.contentId !== undefined && { contentId: o.contentId }),
    ...(o.licenseUrl !== undefined && { licenseUrl: checkUrl(o.licenseUrl) }),
    ...(o.policyHint !== undefined && { policyHint: o.policyHint }),
    ...(o.psshInMoof && { psshInMoof: true }),
    ...(o.embeddedLicense && { embeddedLicenses: o.embeddedLicense.map(readLicenseFile) }),
  };
  const { packageFile } = await import('../../media/package/packager.js'); // loaded on use
  const bar = progressBar('package', inputSize(input));
  let report: PackageReport;
  try {
    report = await packageFile({ ...request, onProgress: bar.update });
  } finally {
    bar.stop();
  }
  process.stdout.write(
    o.json ? `${JSON.stringify(report, null, 2)}\n` : summary(input, output, report),
  );
}

function collectText(text: string, previous: string[] = []): string[] {
  return [...previous, text];
}

function readLicenseFile(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (err) {
    throw kwError(
      'IO_FAILED',
      `cannot read --embedded-license ${file}: ${(err as Error).message}`,
      {
        file,
      },
      err,
    );
  }
}

function inputSize(input: string): number {
  try {
    return statSync(input).size;
  } catch {
    return 0; // packageFile reports the missing input with its coded error
  }
}

function withKid(k: KeyArg, option: string): ContentKey {
  if (!k.kid) throw kwError('CLI_BAD_KEY', `${option} needs KID:KEY: the KID goes into the file`);
  return { kid: k.kid, key: k.key };
}

function onlyKey(keys: KeyArg[] | undefined, option: string, required: boolean): ContentKey {
  if (!keys || keys.length === 0) {
    throw kwError('CLI_USAGE', required ? `${option} KID:KEY is required` : `${option} is empty`);
  }
  if (keys.length > 1) {
    throw kwError(
      'CLI_USAGE',
      `${option} was given ${keys.length} times; use --audio-key or --rotation-key for more keys`,
    );
  }
  return withKid(keys[0]!, option);
}

function optionalKey(keys: KeyArg[] | undefined, option: string): { audioKey?: ContentKey } {
  return keys === undefined ? {} : { audioKey: onlyKey(keys, option, false) };
}

function rotateEvery(o: PackageCliOptions): number {
  const n = integer(o.rotateEvery ?? '1', '--rotate-every');
  if (n !== 1 && (o.rotationKey ?? []).length === 0)
    throw kwError('CLI_USAGE', '--rotate-every needs at least one --rotation-key');
  return n;
}

function integer(text: string, option: string): number {
  if (!/^\d+$/.test(text.trim()))
    throw kwError('CLI_USAGE', `${option} takes a positive integer, not '${text}'`);
  return Number(text);
}

/** --iv: 16 or 32 hex digits (an optional 0x prefix allowed). */
export function parseIv(text: string): Uint8Array {
  const hex = text.trim().replace(/^0x/i, '');
  if (!/^[0-9a-fA-F]+$/.test(hex) || (hex.length !== 16 && hex.length !== 32)) {
    throw kwError('MEDIA_PACKAGE_BAD_IV', `--iv '${text}' is not 8 or 16 bytes of hex`);
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

function checkUrl(text: string): string {
  try {
    return new URL(text).toString();
  } catch {
    throw kwError('CLI_USAGE', `--license-url '${text}' is not a URL`);
  }
}

function summary(input: string, output: string, r: PackageReport): string {
  const plural = r.fragments === 1 ? '' : 's';
  const lines = [
    `packaged ${input} -> ${output}: ${r.scheme}, ${r.fragments} fragment${plural} (AES by ${r.cipher})`,
  ];
  for (const t of r.tracks) {
    const how = t.encrypted ? `encrypted, KID ${t.kid ?? '?'}` : 'clear';
    lines.push(`  track ${t.trackId}: ${t.kind} '${t.format}', ${t.samples} samples, ${how}`);
  }
  lines.push(`  KIDs: ${r.kids.join(', ')}`);
  if (r.psshInMoof) lines.push(`  live: ${r.keyPeriods} key period(s), pssh in every moof`);
  return `${lines.join('\n')}\n`;
}
