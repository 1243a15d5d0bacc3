import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultSeeds, runCampaign } from '../../fuzz/campaign.js';
import { REPO_ROOT } from '../../helpers/media/interop.js';

const seeds = defaultSeeds();

describe.skipIf(seeds.length === 0)(
  'fuzz: mutated CENC files decrypt or fail with a coded error',
  () => {
    it('400 seeded inputs, no crash, no hang', { timeout: 120_000 }, async () => {
      const summary = await runCampaign(seeds, {
        count: 400,
        seed: 20240611,
        timeoutMs: 10_000,
        workers: 2,
        cipher: 'native',
        crashDir: path.join(REPO_ROOT, 'test', '.tmp', 'fuzz-failures'),
      });
      expect(summary.failures, JSON.stringify(summary.failures, null, 2)).toEqual([]);
      expect(summary.ok + summary.coded).toBe(400);
      // The mutations reach past the header checks: some inputs still decrypt, others fail deep.
      expect(summary.ok).toBeGreaterThan(20);
      expect(Object.keys(summary.codes).length).toBeGreaterThan(5);
    });
  },
);
