/**
 * `npm run fuzz [-- --count N --seed S --timeout MS --workers W --cipher js|native --out DIR]`:
 * a mutation campaign over the interop files. Prints a JSON summary; exits 1 on any crash or hang
 * (reproducers are saved under --out).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultSeeds, runCampaign } from './campaign.js';
import { REPO_ROOT } from '../helpers/media/interop.js';

const USAGE = `usage: npm run fuzz -- [--count N] [--seed N] [--timeout MS] [--workers N]
                        [--cipher native|js] [--out DIR]
Mutates CENC files (the interop set plus generated PIFF, cens and rotation files) and runs
each through decrypt and inspect: every input must decrypt or fail with a coded error.
Prints a JSON summary; failures are saved under --out with their seed.`;

function options(): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({
      options: {
        count: { type: 'string', default: '100000' },
        seed: { type: 'string', default: String(Date.now() % 1_000_000) },
        timeout: { type: 'string', default: '5000' },
        workers: { type: 'string', default: '2' },
        cipher: { type: 'string', default: 'native' },
        out: { type: 'string', default: path.join(REPO_ROOT, 'test', '.tmp', 'fuzz-failures') },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    console.error(`fuzz: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

function positive(name: string, text: unknown, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    console.error(`fuzz: --${name} must be an integer >= ${min}, not '${String(text)}'\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

const values = options();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (values.cipher !== 'native' && values.cipher !== 'js') {
  console.error(`fuzz: --cipher is 'native' or 'js'\n${USAGE}`);
  process.exit(2);
}

const seeds = defaultSeeds();
if (seeds.length === 0) {
  console.error('fuzz: no seeds (the interop files are missing)');
  process.exit(2);
}
const summary = await runCampaign(seeds, {
  count: positive('count', values.count),
  seed: positive('seed', values.seed, 0),
  timeoutMs: positive('timeout', values.timeout),
  workers: positive('workers', values.workers),
  cipher: values.cipher,
  crashDir: String(values.out),
});
console.log(
  JSON.stringify({ seed: Number(values.seed), cipher: values.cipher, ...summary }, null, 2),
);
process.exit(summary.failures.length > 0 ? 1 : 0);
