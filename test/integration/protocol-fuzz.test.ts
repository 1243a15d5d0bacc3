import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runProtocolCampaign } from '../fuzz/protocol-campaign.js';
import { REPO_ROOT } from '../helpers/media/interop.js';

describe('fuzz: mutated signed protocol messages succeed or fail with a coded error', () => {
  it('600 seeded inputs through decoders, verifyMessage, head-end and device parsers', async () => {
    const summary = await runProtocolCampaign({
      count: 600,
      seed: 20240612,
      timeoutMs: 10_000,
      httpEvery: 10,
      crashDir: path.join(REPO_ROOT, 'test', '.tmp', 'fuzz-failures'),
    });
    expect(summary.failures, JSON.stringify(summary.failures, null, 2)).toEqual([]);
    expect(summary.ok + summary.coded).toBe(600);
    // The mutations get past the decoders and the signature into the services.
    expect(summary.ok).toBeGreaterThan(50);
    expect(Object.keys(summary.codes).length).toBeGreaterThan(4);
    expect(summary.http.requests).toBeGreaterThan(10);
  });
});
