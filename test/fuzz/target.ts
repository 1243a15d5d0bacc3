import { isKeywardenError } from '../../src/errors/index.js';
import { decryptBytes, type ContentKey } from '../../src/media/decrypt/index.js';
import { inspectSource } from '../../src/media/inspect.js';
import { jsCipherFactory } from '../../src/media/js-sample-cipher.js';
import { nativeCipherFactory } from '../../src/media/native-sample-cipher.js';
import { BufferSource } from '../../src/media/stream/byte-source.js';
import { listSamplesOf } from '../helpers/samples.js';

/** What one input did: 'ok' and 'coded' are fine; 'crash' is a bug. */
export interface TargetOutcome {
  readonly kind: 'ok' | 'coded' | 'crash';
  readonly code?: string;
  readonly error?: string;
}

/** The fuzz target: decrypt, then inspect, the input; parse the output back. */
export async function runTarget(
  input: Uint8Array,
  keys: readonly ContentKey[],
  cipher: 'native' | 'js',
): Promise<TargetOutcome> {
  const codes: string[] = [];
  try {
    try {
      const { output } = await decryptBytes(input, {
        keys,
        cipherFactory: cipher === 'native' ? nativeCipherFactory : jsCipherFactory,
      });
      // What we write must parse again.
      listSamplesOf(output);
    } catch (err) {
      if (!isKeywardenError(err)) throw err;
      codes.push(err.code);
    }
    try {
      await inspectSource(new BufferSource(input, 'fuzz'));
    } catch (err) {
      if (!isKeywardenError(err)) throw err;
      codes.push(err.code);
    }
  } catch (err) {
    const e = err as Error;
    return { kind: 'crash', error: `${e?.name}: ${e?.message}\n${e?.stack ?? ''}` };
  }
  return codes.length > 0 ? { kind: 'coded', code: codes[0]! } : { kind: 'ok' };
}
