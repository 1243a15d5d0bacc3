import { parentPort, workerData } from 'node:worker_threads';
import { runTarget } from './target.js';

/** Messages from the campaign: one input to run. */
interface Job {
  readonly id: number;
  readonly input: Uint8Array;
  readonly keys: { kid?: Uint8Array; key: Uint8Array }[];
}

const cipher = (workerData as { cipher: 'native' | 'js' }).cipher;
parentPort!.on('message', (job: Job) => {
  void runTarget(job.input, job.keys, cipher).then((outcome) =>
    parentPort!.postMessage({ id: job.id, outcome }),
  );
});
parentPort!.postMessage({ ready: true });
