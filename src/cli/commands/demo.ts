import type { Command } from 'commander';

/** `keywarden demo`: what `npm start` runs. The media stack loads only when it runs. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the end-to-end demo: package, inspect, decrypt and verify real clips')
    .option('--keep', 'keep the files the demo makes')
    .action(async (opts: { keep?: boolean }) => (await import('./demo-run.js')).runDemo(opts));
}
