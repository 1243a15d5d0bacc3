import { SingleBar, Presets } from 'cli-progress';

/** Reports bytes done out of a total. */
export type ProgressSink = (done: number, total: number) => void;

/**
 * A progress bar on stderr when it is a TTY and the job is large enough to be worth one;
 * otherwise a no-op, so pipes and logs stay clean.
 */
export function progressBar(
  label: string,
  totalBytes: number,
  minBytes = 32 * 1024 * 1024,
): {
  update: ProgressSink;
  stop: () => void;
} {
  if (!process.stderr.isTTY || totalBytes < minBytes)
    return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | ETA {eta}s`,
      stream: process.stderr,
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  const mib = (n: number): string => (n / 1048576).toFixed(1);
  bar.start(totalBytes, 0, { doneMiB: mib(0), totalMiB: mib(totalBytes) });
  return {
    update: (done) => bar.update(done, { doneMiB: mib(done), totalMiB: mib(totalBytes) }),
    stop: () => bar.stop(),
  };
}
