/**
 * Benchmark runner: `npm run bench [-- SUITE ...]`. Prints one JSON document to stdout
 * with the machine, the time, and each suite's figures. Progress goes to stderr.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

type Suite = () => Promise<unknown>;

const SUITES: Record<string, Record<string, () => Promise<Suite>>> = {
  decrypt: {
    micro: async () => (await import('./decrypt-micro.js')).runDecryptMicro,
    file: async () => (await import('./decrypt-file.js')).runDecryptFile,
  },
  headend: {
    load: async () => (await import('./headend.js')).runHeadend,
  },
  agent: {
    lifecycle: async () => (await import('./agent.js')).runAgent,
  },
  fleet: {
    revocation: async () => (await import('./fleet.js')).runFleet,
  },
};

async function main(): Promise<void> {
  const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const chosen = names.length ? names : Object.keys(SUITES);
  const results: Record<string, unknown> = {};
  for (const name of chosen) {
    const parts = SUITES[name];
    if (!parts) {
      console.error(`unknown suite '${name}'; known: ${Object.keys(SUITES).join(', ')}`);
      process.exitCode = 2;
      return;
    }
    for (const [part, load] of Object.entries(parts)) {
      console.error(`bench: ${name}/${part} ...`);
      results[`${name}.${part}`] = await (await load())();
    }
  }
  const cpu = os.cpus()[0];
  const report = {
    when: new Date().toISOString(),
    machine: {
      cpu: cpu?.model,
      cores: os.cpus().length,
      memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
      node: process.version,
      arch: process.arch,
    },
    results,
  };
  const json = `${JSON.stringify(report, null, 2)}\n`;
  // npm prints its own banner on stdout unless run with -s, so the report also goes to a file.
  const saved = path.resolve(import.meta.dirname, '..', '.bench', 'last.json');
  mkdirSync(path.dirname(saved), { recursive: true });
  writeFileSync(saved, json);
  process.stdout.write(json);
  console.error(`bench: report saved to ${path.relative(process.cwd(), saved)}`);
}

await main();
