/**
 * `keywarden outputs`: the connectors and what each OPL row or a given license would decide,
 * on the scripted backend (test/fixtures/kms); `--watch --json` follows a scenario's
 * timeline; bad arguments and scenarios are coded errors.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/media/cli-run.js';
import { removeDir } from './headend-helpers.js';

const LIVING_ROOM = path.resolve('test/fixtures/kms/living-room.json');
const VC4 = path.resolve('test/fixtures/kms/vc4.json');
const work = mkdtempSync(path.join(os.tmpdir(), 'kw-outputs-cli-'));
afterAll(() => removeDir(work));

interface Report {
  source: string;
  state: { known: boolean; connectors?: { name: string; contentProtection: string }[] };
  levels?: { table: string; values: string; level: string; action: string; error?: string }[];
  requirements?: { requirement: string; set: boolean; action: string }[];
  decisions?: { action: string; engage: { connector: string; contentType?: number }[] }[];
}

const json = async (args: string[]): Promise<Report> => {
  const run = await runCli(['outputs', '--json', ...args]);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as Report;
};

describe('keywarden outputs', () => {
  it('lists the connectors and decides every OPL row on them', async () => {
    const r = await json(['--backend', 'scripted', '--scenario', LIVING_ROOM]);
    expect(r.source).toContain('scripted:living-room');
    expect(r.state.connectors?.map((c) => c.name)).toEqual(['HDMI-A-1', 'Composite-1', 'DP-1']);
    const row = (table: string, level: string) =>
      r.levels?.find((l) => l.table === table && l.level === level);
    expect(row('uncompressed digital video', 'unrestricted')?.action).toBe('allow');
    expect(row('uncompressed digital video', 'restricted')?.action).toBe('pending'); // HDCP first
    expect(row('uncompressed digital video', 'disallow')?.error).toBe('OUTPUT_PROTECTION_UNMET');
  });

  it("decides a license's requirements, with the HDCP request it would make", async () => {
    const r = await json([
      '--backend',
      'scripted',
      '--scenario',
      LIVING_ROOM,
      '--opl-uncompressed-video',
      '300',
      '--hdcp',
      '2.2',
    ]);
    expect(r.decisions?.[0]?.action).toBe('pending');
    expect(r.decisions?.[0]?.engage).toEqual([
      expect.objectContaining({ connector: 'HDMI-A-1', contentType: 1 }),
    ]);
    const set = r.requirements?.filter((q) => q.set).map((q) => q.requirement);
    expect(set).toEqual(expect.arrayContaining(['uncompressed_digital_video_opl', 'hdcp_version']));
  });

  it('says 6037 on a connector without HDCP (vc4) and 6036 with no output state', async () => {
    const vc4 = await json([
      '--backend',
      'scripted',
      '--scenario',
      VC4,
      '--opl-uncompressed-video',
      '300',
    ]);
    expect(JSON.stringify(vc4.decisions)).toContain('OUTPUT_CANNOT_ENGAGE');
    const none = await json(['--backend', 'none', '--opl-uncompressed-video', '300']);
    expect(none.state.known).toBe(false);
    expect(JSON.stringify(none.decisions)).toContain('OUTPUT_STATUS_UNKNOWN');
  });

  it.each([
    [['--backend', 'drm']],
    [['--backend', 'scripted']],
    [['--opl-analog-video', 'lots']],
    [['--max-resolution', 'huge']],
    [['--cgmsa', 'sometimes']],
    [['--license', 'abc']],
  ])('refuses %j with a usage error', async (args) => {
    const run = await runCli(['outputs', ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('7200');
  });

  it('refuses a bad scenario with 7110', async () => {
    const bad = path.join(work, 'bad.json');
    writeFileSync(bad, JSON.stringify({ name: 'x', connectors: [{ id: 1, type: 'SCART' }] }));
    const run = await runCli(['outputs', '--backend', 'scripted', '--scenario', bad]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('7110');
  });

  it('--watch --json reports each change of the timeline as a JSON line', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.resolve('test/helpers/cli-entry.ts'),
        'outputs',
        '--watch',
        '--json',
        '--backend',
        'scripted',
        '--scenario',
        LIVING_ROOM, // Composite-1 is plugged in at 150 ms
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 20_000;
    const events = (): { event: string; state?: Report['state'] }[] =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { event: string });
    while (!events().some((e) => e.event === 'change') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    const all = events();
    expect(all[0]?.event).toBe('state');
    const change = all.find((e) => e.event === 'change') as unknown as { state: Report['state'] };
    expect(change).toBeDefined();
    const composite = change.state.connectors?.find((c) => c.name === 'Composite-1') as
      { active: boolean } | undefined;
    expect(composite?.active).toBe(true);
    expect(code).toBe(0);
  });
});
