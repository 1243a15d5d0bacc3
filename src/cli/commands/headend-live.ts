import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { AtomicFile } from '../../io/atomic-file.js';
import { kwError } from '../../errors/index.js';
import { DEFAULT_FRAGMENT_MS, PACKAGE_SCHEMES } from '../../media/package/package-options.js';
import type { ContentKey } from '../../media/package/key-schedule.js';
import type { CencScheme } from '../../media/sample-crypto.js';
import { decode16 } from '../key-arg.js';
import { progressBar } from '../progress.js';

import type { HeadendInstance } from '../headend-access.js';

/** Runs `fn` on the head-end of `headend --data DIR` (opened and closed around it). */
export type WithHeadend = <T>(fn: (h: HeadendInstance) => T | Promise<T>) => Promise<T>;

const LIVE_HELP = `
Live streams with key rotation (docs/key-rotation.md). 'live package' makes one key per key
period, stores the keys in the content key store, issues one embedded leaf license per
period under the broadcast root(s) (it carries the period's key and the next one), and
packages the input with seig key rotation and a pssh in every moof that names the current
and next KIDs and carries the period's embedded license. A device holding a root license of
one of the roots plays it without a license request per key.

The roots must be broadcast roots:
  keywarden headend --data DIR policy set live-root --chain root --broadcast --license-duration 30d
  keywarden headend --data DIR root channel-1 --policy live-root

Example:
  keywarden headend --data DIR live package --root channel-1 --input clip.mp4 \\
    --output live.mp4 --periods 3 --fragment-ms 1000 --scheme cbcs
`;

interface LivePackageFlags {
  root: string[];
  input: string;
  output: string;
  periods?: string;
  rotateEvery?: string;
  scheme: CencScheme;
  fragmentMs: string;
  contentId?: string;
  licenseUrl?: string;
  policy?: string;
  json?: boolean;
}

interface LiveLicenseFlags {
  root: string[];
  kid: string[];
  output: string;
  policy?: string;
  contentId?: string;
  json?: boolean;
}

const collect = (text: string, previous: string[] = []): string[] => [...previous, text];

function positive(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1)
    throw kwError('CLI_USAGE', `${option} takes a positive integer, not '${text}'`);
  return Number(text);
}

/**
 * Fragments per key period for `--periods N` over `fragments` fragments: a value giving
 * exactly N periods when one exists, else the one giving the fewest periods above N.
 */
export function rotateEveryFor(fragments: number, periods: number): number {
  if (periods > fragments)
    throw kwError(
      'CLI_USAGE',
      `the stream has ${fragments} fragment(s), too few for ${periods} key periods; lower --fragment-ms`,
      { fragments, periods },
    );
  for (let every = Math.ceil(fragments / periods); every >= 1; every--)
    if (Math.ceil(fragments / every) >= periods) return every;
  return 1;
}

function randomKey(): ContentKey {
  return { kid: randomBytes(16), key: randomBytes(16) };
}

function checkUrl(text: string): string {
  try {
    return new URL(text).toString();
  } catch {
    throw kwError('CLI_USAGE', `--license-url '${text}' is not a URL`);
  }
}

async function livePackage(f: LivePackageFlags, withHeadend: WithHeadend): Promise<void> {
  if (f.periods !== undefined && f.rotateEvery !== undefined)
    throw kwError('CLI_USAGE', 'give --periods or --rotate-every, not both');
  const periodsWanted = positive(f.periods, '--periods');
  const fragmentMs = positive(f.fragmentMs, '--fragment-ms') ?? DEFAULT_FRAGMENT_MS;
  const base = {
    input: f.input,
    output: f.output,
    scheme: f.scheme,
    fragmentMs,
    ...(f.contentId !== undefined && { contentId: f.contentId }),
    ...(f.licenseUrl !== undefined && { licenseUrl: checkUrl(f.licenseUrl) }),
    ...(f.policy !== undefined && { policyHint: f.policy }),
  };
  const packager = await import('../../media/package/packager.js'); // loaded on use
  const fragments = await packager.countPackageFragments({ ...base, key: randomKey() });
  if (fragments === 0) throw kwError('MEDIA_UNSUPPORTED', 'the input has no samples to package');
  const rotateEvery =
    periodsWanted !== undefined
      ? rotateEveryFor(fragments, periodsWanted)
      : (positive(f.rotateEvery, '--rotate-every') ?? 1);
  const periods = Math.ceil(fragments / rotateEvery);
  const contentId = f.contentId ?? path.parse(f.input).name;
  const issued = await withHeadend(async (h) => {
    const keys: ContentKey[] = [];
    for (let p = 0; p < periods; p++) {
      const kid = randomBytes(16);
      const added = await h.admin.addContentKey({
        kid,
        contentId,
        ...(f.policy !== undefined && { policy: f.policy }),
      });
      if (!added.key) throw kwError('HEADEND_INTERNAL', 'the generated key was not returned');
      keys.push({ kid, key: Buffer.from(added.key, 'hex') });
    }
    const licenses = [];
    for (let p = 0; p < periods; p++) {
      const next = keys[p + 1];
      licenses.push(
        await h.admin.issueEmbeddedLicense({
          kids: [keys[p]!.kid, ...(next ? [next.kid] : [])],
          roots: f.root,
          contentId,
          ...(f.policy !== undefined && { policy: f.policy }),
        }),
      );
    }
    return { keys, licenses };
  });
  const bar = progressBar('package', inputSize(f.input));
  let report;
  try {
    report = await packager.packageFile({
      ...base,
      contentId,
      key: issued.keys[0]!,
      rotationKeys: issued.keys.slice(1),
      rotateEvery,
      psshInMoof: true,
      embeddedLicenses: issued.licenses.map((l) => l.bytes),
      onProgress: bar.update,
    });
  } finally {
    bar.stop();
  }
  const summary = {
    output: f.output,
    scheme: report.scheme,
    contentId,
    fragments: report.fragments,
    rotateEvery,
    roots: f.root,
    periods: issued.licenses.map((l, p) => ({
      period: p,
      kid: Buffer.from(issued.keys[p]!.kid).toString('hex'),
      embeddedLicense: {
        id: l.licenseId,
        kids: l.kids,
        bytes: l.bytes.length,
        expiresAtMs: l.expiresAtMs,
      },
    })),
  };
  process.stdout.write(
    f.json
      ? `${JSON.stringify(summary, null, 2)}\n`
      : [
          `packaged ${f.input} -> ${f.output}: ${report.scheme}, ${report.fragments} fragments, ${periods} key periods of ${rotateEvery} fragment(s) under root(s) ${f.root.join(', ')}`,
          ...summary.periods.map(
            (p) =>
              `  period ${p.period}: KID ${p.kid}, embedded license ${p.embeddedLicense.id} (${p.embeddedLicense.bytes} bytes)`,
          ),
        ].join('\n') + '\n',
  );
}

function inputSize(input: string): number {
  try {
    return statSync(input).size;
  } catch {
    return 0; // the packager reports the missing input with its coded error
  }
}

async function liveLicense(f: LiveLicenseFlags, withHeadend: WithHeadend): Promise<void> {
  const kids = f.kid.map((k) => decode16(k, 'KID'));
  const issued = await withHeadend((h) =>
    h.admin.issueEmbeddedLicense({
      kids,
      roots: f.root,
      ...(f.contentId !== undefined && { contentId: f.contentId }),
      ...(f.policy !== undefined && { policy: f.policy }),
    }),
  );
  const out = await AtomicFile.create(f.output);
  try {
    await out.write(issued.bytes);
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
  const { bytes, ...rest } = issued;
  const shown = { ...rest, output: f.output, size: bytes.length };
  process.stdout.write(
    f.json
      ? `${JSON.stringify(shown, null, 2)}\n`
      : `embedded license ${issued.licenseId} for ${issued.kids.join(', ')} under ${issued.roots.join(', ')} -> ${f.output} (${bytes.length} bytes)\n`,
  );
}

/** Registers `keywarden headend live package|license` (live streams with key rotation). */
export function registerLive(headend: Command, withHeadend: WithHeadend): void {
  const live = headend
    .command('live')
    .description('live streams: key rotation with leaf licenses embedded under broadcast roots')
    .addHelpText('after', LIVE_HELP);
  live
    .command('package')
    .description('package a live stream: a key per period, embedded licenses, pssh in every moof')
    .requiredOption(
      '--root <id>',
      'broadcast root whose key wraps the embedded licenses (repeatable)',
      collect,
    )
    .requiredOption('--input <file>', 'clear MP4 (H.264/H.265, AAC)')
    .requiredOption('--output <file>', 'the live stream to write (fragmented CENC)')
    .option('--periods <N>', 'number of key periods to split the stream into')
    .option('--rotate-every <K>', 'fragments per key period (default 1)')
    .addOption(
      new Option('--scheme <scheme>', 'protection scheme').choices(PACKAGE_SCHEMES).default('cenc'),
    )
    .option(
      '--fragment-ms <N>',
      'target fragment duration in milliseconds',
      String(DEFAULT_FRAGMENT_MS),
    )
    .option('--content-id <id>', 'channel id (default: the input file name)')
    .option('--license-url <url>', "license server URL for keywarden's pssh")
    .option('--policy <name>', "policy of the period keys and the embedded licenses' rights")
    .option('--json', 'JSON output')
    .addHelpText('after', LIVE_HELP)
    .action((f: LivePackageFlags) => livePackage(f, withHeadend));
  live
    .command('license')
    .description('issue one embedded leaf license for registered KIDs under broadcast roots')
    .requiredOption('--root <id>', 'broadcast root (repeatable)', collect)
    .requiredOption('--kid <kid>', 'KID of a registered content key (repeatable)', collect)
    .requiredOption(
      '--output <file>',
      'where to write the signed license (for package --embedded-license)',
    )
    .option('--policy <name>', "policy for the license rights (default: the keys' policy)")
    .option('--content-id <id>', 'content id the license names')
    .option('--json', 'JSON output')
    .action((f: LiveLicenseFlags) => liveLicense(f, withHeadend));
}
