import type { Command } from 'commander';
import { kwError } from '../../errors/index.js';
import type { DecryptReport } from '../../media/decrypt/index.js';
import type { SampleCipherFactory } from '../../media/sample-crypto.js';
import { collectKey, type KeyArg } from '../key-arg.js';
import { progressBar } from '../progress.js';

interface DecryptFlags {
  key: KeyArg[];
  init?: string;
  keyCheck: boolean;
  cipher: string;
  json?: boolean;
}

// Implementations load when the command runs, so `keywarden --help` and the other commands
// start fast (start-up is part of every decrypt's wall time).
async function cipherFactory(name: string): Promise<SampleCipherFactory> {
  if (name === 'native')
    return (await import('../../media/native-sample-cipher.js')).nativeCipherFactory;
  if (name === 'js') return (await import('../../media/js-sample-cipher.js')).jsCipherFactory;
  throw kwError('CLI_USAGE', `--cipher is 'native' or 'js', not '${name}'`);
}

function summary(report: DecryptReport, output: string, seconds: number): string {
  const tracks = report.tracks
    .map((t) => `#${t.id} ${t.format} (${t.schemes.join('/')})`)
    .join(', ');
  const mib = (report.bytesOut / 1048576).toFixed(1);
  return `decrypted ${report.encryptedSamples} samples of ${tracks} into ${output} (${mib} MiB) in ${seconds.toFixed(2)} s\n`;
}

/** Progress on a TTY, created once the input size is known. */
function progress(): { update: (done: number, total: number) => void; stop: () => void } {
  let bar: ReturnType<typeof progressBar> | undefined;
  return {
    update: (done, total) => {
      bar ??= progressBar('decrypt', total);
      bar.update(done, total);
    },
    stop: () => bar?.stop(),
  };
}

/** The action: decrypt with a progress bar, then print the summary or the JSON report. */
async function runDecrypt(input: string, output: string, flags: DecryptFlags): Promise<void> {
  if (flags.key.length === 0)
    throw kwError('CLI_USAGE', 'decrypt needs at least one --key KID:KEY');
  const factory = await cipherFactory(flags.cipher);
  const { decryptFile } = await import('../../media/decrypt/index.js');
  const bar = progress();
  const started = performance.now();
  try {
    const report = await decryptFile(input, output, {
      keys: flags.key,
      ...(flags.init !== undefined && { init: flags.init }),
      verifyKey: flags.keyCheck,
      cipherFactory: factory,
      onProgress: bar.update,
    });
    bar.stop();
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(
      flags.json ? `${JSON.stringify(report, null, 2)}\n` : summary(report, output, seconds),
    );
  } finally {
    bar.stop();
  }
}

/** Registers `keywarden decrypt IN OUT --key KID:KEY [--init INIT]`. */
export function registerDecrypt(program: Command): void {
  program
    .command('decrypt')
    .description('decrypt a CENC/PIFF MP4 (cenc, cbcs, cens, cbc1) into a clear MP4')
    .argument('<input>', 'encrypted MP4, fragmented or flat; a media segment with --init')
    .argument('<output>', 'clear MP4 to write (it appears only when complete)')
    .option(
      '-k, --key <KID:KEY>',
      'content key, repeatable; KID may be left out when there is one key (hex or base64)',
      collectKey,
      [],
    )
    .option(
      '--init <file>',
      'separate DASH init segment; the output is then init + media as one clear MP4',
    )
    .option('--no-key-check', 'skip the codec checks that detect a wrong key')
    .option(
      '--cipher <impl>',
      "AES implementation: 'native' (the addon) or 'js' (node:crypto)",
      'native',
    )
    .option('--json', 'print the report as JSON')
    .action(runDecrypt);
}
