import { AtomicFile } from '../../io/atomic-file.js';
import { BufferSink, BufferSource, FileSource, type ByteSource } from '../stream/byte-source.js';
import { decryptSources, type DecryptOptions, type DecryptReport } from './decrypt-job.js';

/** Options of {@link decryptFile}. */
export interface DecryptFileOptions extends DecryptOptions {
  /** A separate init segment (DASH); `input` is then a media segment or a run of them. */
  readonly init?: string;
}

/**
 * Decrypts `input` into a clear MP4 at `output`. The output appears only when complete (a
 * temporary sibling renamed into place); on any error nothing is left behind. With `init`,
 * the output is the clear init segment followed by the clear media: one playable file.
 */
export async function decryptFile(
  input: string,
  output: string,
  opts: DecryptFileOptions,
): Promise<DecryptReport> {
  const sources: FileSource[] = [];
  try {
    if (opts.init !== undefined) sources.push(await FileSource.open(opts.init));
    sources.push(await FileSource.open(input));
    const out = await AtomicFile.create(output);
    try {
      const report = await decryptSources(sources, { write: (d, p) => out.write(d, p) }, opts);
      await out.commit();
      return report;
    } catch (err) {
      await out.abort();
      throw err;
    }
  } finally {
    await Promise.all(sources.map((s) => s.close()));
  }
}

/** Decrypts a file held in memory (optionally after its init segment); returns the clear bytes. */
export async function decryptBytes(
  input: Uint8Array,
  opts: DecryptOptions,
  init?: Uint8Array,
): Promise<{ output: Buffer; report: DecryptReport }> {
  const sources: ByteSource[] = [];
  if (init) sources.push(new BufferSource(init, 'init'));
  sources.push(new BufferSource(input, 'input'));
  const sink = new BufferSink();
  const report = await decryptSources(sources, sink, opts);
  return { output: sink.toBuffer(), report };
}
