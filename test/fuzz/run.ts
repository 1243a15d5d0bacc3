/**
 * `npm run fuzz [-- --count N --seed S --timeout MS --workers W --cipher js|native --out DIR]`:
 * a mutation campaign over the interop files. Prints a JSON summary; exits 1 on any crash or hang
 * (reproducers are saved under --out).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultSeeds, runCampaign } from './campaign.js';
import { REPO_ROOT } from '../helpers/media/interop.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '100000' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    timeout: { type: 'string', default: '5000' },
    workers: { type: 'string', default: '2' },
    cipher: { type: 'string', default: 'js' },
    out: { type: 'string', default: path.join(REPO_ROOT, 'test', '.tmp', 'fuzz-failures') },
  },
});

const seeds = defaultSeeds();
if (seeds.length === 0) {
  console.error('fuzz: no seeds (the interop files are missing)');
  process.exit(2);
}
const summary = await runCampaign(seeds, {
  count: Number(values.count),
  seed: Number(values.seed),
  timeoutMs: Number(values.timeout),
  workers: Number(values.workers),
  cipher: values.cipher === 'native' ? 'native' : 'js',
  crashDir: values.out!,
});
console.log(JSON.stringify({ seed: Number(values.seed), ...summary }, null, 2));
process.exit(summary.failures.length > 0 ? 1 : 0);
