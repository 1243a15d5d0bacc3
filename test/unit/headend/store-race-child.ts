/**
 * One of several processes hammering one SQLite data dir at once (store.test.ts): each
 * opens its own connection, waits for the parent's "go", runs the atomic repository methods
 * under contention, and sends back what it saw.
 */
import { openSqliteStore } from '../../../src/headend/store/open-store.js';

interface Go {
  readonly dir: string;
  readonly index: number;
  readonly rounds: number;
}

async function rotateOnce(store: Awaited<ReturnType<typeof openSqliteStore>>): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const account = await store.getAccount('rot');
    if (!account) throw new Error('no account rot');
    const result = await store.rotateDomainKey({
      accountId: 'rot',
      expectedRevision: account.revision,
      publicKey: Buffer.from(`pub-${account.revision + 1}`),
      sealedKey: Buffer.from(`sealed-${account.revision + 1}`),
    });
    if (result === 'rotated') return attempt;
    if (result !== 'stale-revision') throw new Error(`rotation: ${result}`);
  }
}

process.once('message', (go: Go) => {
  void (async () => {
    // Half of them checkpoint from a background thread, as cluster workers do.
    const store = await openSqliteStore(go.dir, { backgroundCheckpoints: go.index % 2 === 0 });
    const joins: string[] = [];
    const attempts: number[] = [];
    let nonces = 0;
    let retries = 0;
    for (let i = 0; i < go.rounds; i++) {
      const joined = await store.joinDomain({
        accountId: 'race',
        domainId: '',
        deviceId: `dev-${go.index}-${i}`,
        friendlyName: 'x',
        at: i,
      });
      joins.push(joined.status);
      const admitted = await store.admitProvisioning({
        hardwareId: 'hw-race',
        deviceId: `key-${go.index}-${i}`,
        at: 1000 + i,
        windowStart: 0,
      });
      if (admitted.status === 'admitted') attempts.push(admitted.attempts);
      if (await store.rememberNonce(`nonce-${i}`, 1e15, 0)) nonces++;
      if (i % 5 === 0) retries += await rotateOnce(store);
    }
    const release = await store.releaseLicense('lic', 'dev', 1);
    await store.close();
    process.send?.({ joins, attempts, nonces, release, retries }, () => process.exit(0));
  })().catch((err: unknown) => {
    process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
    process.exit(1);
  });
});
process.send?.('ready');
