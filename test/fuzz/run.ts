/**
 * `npm run fuzz [-- --target media|protocol|all --count N --seed S --timeout MS --workers W
 * --cipher js|native --http-every N --out DIR]`: mutation campaigns over the interop files
 * (media, the default) and over signed protocol messages (protocol). Prints a JSON summary;
 * exits 1 on any crash or hang (reproducers are saved under --out).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultSeeds, runCampaign } from './campaign.js';
import { runProtocolCampaign } from './protocol-campaign.js';
import { REPO_ROOT } from '../helpers/media/interop.js';

const USAGE = `usage: npm run fuzz -- [--target media|protocol|all] [--count N] [--seed N]
                        [--timeout MS] [--workers N] [--cipher native|js]
                        [--http-every N] [--out DIR]
--target media (default): mutates CENC files (the interop set plus generated PIFF, cens and
  rotation files) and runs each through decrypt and inspect.
--target protocol: mutates valid signed messages (provisioning, license, domain join,
  envelope) minted by an in-process head-end, at the envelope, the re-signed body and the
  re-signed payload, and runs each through the decoders, verifyMessage and the head-end
  handler or device parser; every --http-every'th request input (default 20, 0 = never)
  is also POSTed to a live in-process head-end, aborted after --timeout.
--target all: both, each with --count inputs.
Every input must succeed or fail with a coded error. Prints a JSON summary per target;
failures are saved under --out with their seed.`;

function options(): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({
      options: {
        target: { type: 'string', default: 'media' },
        count: { type: 'string', default: '100000' },
        'http-every': { type: 'string', default: '20' },
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

if (!['media', 'protocol', 'all'].includes(String(values.target))) {
  console.error(`fuzz: --target is 'media', 'protocol' or 'all'\n${USAGE}`);
  process.exit(2);
}

async function fuzzMedia(): Promise<number> {
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
    cipher: values.cipher === 'js' ? 'js' : 'native',
    crashDir: String(values.out),
  });
  const seed = Number(values.seed);
  console.log(
    JSON.stringify({ target: 'media', seed, cipher: values.cipher, ...summary }, null, 2),
  );
  return summary.failures.length;
}

async function fuzzProtocol(): Promise<number> {
  const summary = await runProtocolCampaign({
    count: positive('count', values.count),
    seed: positive('seed', values.seed, 0),
    timeoutMs: positive('timeout', values.timeout),
    httpEvery: positive('http-every', values['http-every'], 0),
    crashDir: String(values.out),
  });
  console.log(
    JSON.stringify({ target: 'protocol', seed: Number(values.seed), ...summary }, null, 2),
  );
  return summary.failures.length;
}

let failures = 0;
if (values.target !== 'protocol') failures += await fuzzMedia();
if (values.target !== 'media') failures += await fuzzProtocol();
process.exit(failures > 0 ? 1 : 0);
