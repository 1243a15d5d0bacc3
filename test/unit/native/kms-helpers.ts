/**
 * Helpers of the KMS tests: a child process holding a device, and an event collector.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';

import type { KmsDevice, KmsOpenOptions, NativeUevent } from '../../../src/native/binding.js';

export const ROOT = path.resolve(import.meta.dirname, '../../..');
export const KMS_FIXTURES = path.join(ROOT, 'test/fixtures/kms');

export interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly ms: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly killed: boolean;
}

/**
 * Runs `body` in a child `node --import tsx` with `device` opened from `options`. Kills it
 * `afterReadyMs` after it prints "ready" (or after 20 s in any case). Resolves with how it
 * ended.
 */
export function runKmsChild(
  options: KmsOpenOptions,
  body: string,
  afterReadyMs = 10_000,
  nodeArgs: readonly string[] = [],
): Promise<ChildResult> {
  const code = `
    import { openKmsDevice } from ${JSON.stringify(path.join(ROOT, 'src/native/binding.ts'))};
    const device = openKmsDevice(JSON.parse(process.env.KW_KMS_OPTIONS));
    ${body}
  `;
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(
      process.execPath,
      [...nodeArgs, '--import', 'tsx', '--input-type=module', '-e', code],
      {
        cwd: ROOT,
        env: { ...process.env, KW_KMS_OPTIONS: JSON.stringify(options) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    let killed = false;
    const kill = (): void => {
      killed = true;
      child.kill('SIGKILL');
    };
    const cap = setTimeout(kill, 20_000);
    let grace: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!grace && stdout.includes('ready')) grace = setTimeout(kill, afterReadyMs);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (exitCode, signal) => {
      clearTimeout(cap);
      clearTimeout(grace);
      resolve({ code: exitCode, signal, ms: Date.now() - started, stdout, stderr, killed });
    });
  });
}

/** Records a device's uevents and waits for the one a test expects. */
export class EventLog {
  readonly events: NativeUevent[] = [];
  private waiters: (() => void)[] = [];

  constructor(device: KmsDevice) {
    device.watch((event) => {
      this.events.push(event);
      for (const wake of this.waiters) wake();
    });
  }

  /** The first event (recorded or to come) matching `match`; rejects after `timeoutMs`. */
  waitFor(match: (e: NativeUevent) => boolean, timeoutMs = 3000): Promise<NativeUevent> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.events.find(match);
        if (!found) return false;
        this.waiters = this.waiters.filter((w) => w !== wake);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const wake = (): void => void check();
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        reject(
          new Error(
            `no matching uevent within ${timeoutMs} ms; got ${JSON.stringify(this.events)}`,
          ),
        );
      }, timeoutMs);
      if (!check()) this.waiters.push(wake);
    });
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
