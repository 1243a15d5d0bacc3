import { kwError } from '../../errors/index.js';
import { findChildren, boxReader, type Box } from '../box.js';
import { ByteReader } from '../bytes.js';
import {
  PIFF_SENC_OVERRIDE,
  SampleEncryptionTableBuilder,
  auxInfoSize,
  isCencAuxInfo,
  isSampleEncryptionBox,
  parseAuxInfoOffsets,
  parseAuxInfoSizes,
  parseSampleEncryption,
  type PiffOverride,
  type SampleEncryptionTable,
} from '../boxes/index.js';
import { checkIvSize } from '../boxes/protection.js';

/** Most bytes of saiz/saio auxiliary information one fragment or track may need. */
export const MAX_AUX_BYTES = 64 * 1024 * 1024;

/** Reads `length` bytes at an absolute offset of the source the boxes came from. */
export type AuxReader = (offset: number, length: number) => Promise<Uint8Array>;

/** Where a fragment's (or flat track's) encryption boxes are, and how its samples are grouped. */
export interface AuxContext {
  /** traf or stbl. */
  readonly container: Box;
  readonly sampleCount: number;
  /** Per-sample IV size (from tenc/seig/PIFF), 0 for constant IVs and clear samples. */
  readonly ivSizes: Uint8Array;
  /** Base that saio offsets are relative to: moof start or base_data_offset; 0 in stbl. */
  readonly saioBase: number;
  /** Samples per trun (traf) or per chunk (stbl), for a saio with one offset per run/chunk. */
  readonly runLengths: readonly number[];
  readonly read: AuxReader;
}

/** The PIFF sample encryption override (flag 0x1) of a traf, read before anything else needs IV sizes. */
export function piffOverrideOf(container: Box): PiffOverride | undefined {
  const box = findChildren(container, 'uuid').find(isSampleEncryptionBox);
  if (!box) return undefined;
  const r = boxReader(box);
  const { flags } = r.fullBoxHeader();
  if ((flags & PIFF_SENC_OVERRIDE) === 0) return undefined;
  const algorithm = r.u24();
  return { algorithm, ivSize: checkIvSize(r.u8(), 'piff senc'), kid: Uint8Array.from(r.bytes(16)) };
}

/**
 * The per-sample IVs and subsample maps of a fragment or flat track: from 'senc' (or PIFF's
 * box) when present, else from saiz/saio (ISO/IEC 23001-7 §7.1), which may point anywhere in
 * the file. Undefined when there is neither (only valid with constant IVs and whole-sample
 * encryption).
 */
export async function sampleEncryptionTable(
  ctx: AuxContext,
): Promise<SampleEncryptionTable | undefined> {
  const senc = (ctx.container.children ?? []).find(isSampleEncryptionBox);
  if (senc) {
    return parseSampleEncryption(senc, (i) => ctx.ivSizes[i] ?? 0, ctx.sampleCount).table;
  }
  const saizBox = findChildren(ctx.container, 'saiz').find((b) =>
    isCencAuxInfo(parseAuxInfoSizes(b)),
  );
  const saioBox = findChildren(ctx.container, 'saio').find((b) =>
    isCencAuxInfo(parseAuxInfoOffsets(b)),
  );
  if (!saizBox && !saioBox) return undefined;
  if (!saizBox || !saioBox)
    throw kwError('MEDIA_MISSING_BOX', `'${saizBox ? 'saio' : 'saiz'}' is missing`, {
      box: saizBox ? 'saio' : 'saiz',
    });
  return readAuxInfo(ctx, saizBox, saioBox);
}

async function readAuxInfo(
  ctx: AuxContext,
  saizBox: Box,
  saioBox: Box,
): Promise<SampleEncryptionTable> {
  const saiz = parseAuxInfoSizes(saizBox);
  const saio = parseAuxInfoOffsets(saioBox);
  if (saiz.sampleCount !== ctx.sampleCount) {
    throw kwError(
      'MEDIA_MALFORMED_BOX',
      `saiz covers ${saiz.sampleCount} of ${ctx.sampleCount} samples`,
      { box: 'saiz' },
    );
  }
  const spans = auxSpans(ctx, saio.offsets);
  const builder = new SampleEncryptionTableBuilder(ctx.sampleCount);
  let total = 0;
  for (const span of spans) {
    let length = 0;
    for (let i = span.first; i < span.first + span.count; i++) length += auxInfoSize(saiz, i);
    total += length;
    if (total > MAX_AUX_BYTES)
      throw kwError('MEDIA_TOO_LARGE', `${total} bytes of auxiliary information`, { box: 'saiz' });
    const bytes = await ctx.read(ctx.saioBase + span.offset, length);
    const r = new ByteReader(bytes, 0, bytes.length, 'aux info', ctx.saioBase + span.offset);
    for (let i = span.first; i < span.first + span.count; i++)
      readEntry(builder, r.sub(auxInfoSize(saiz, i)), ctx.ivSizes[i] ?? 0);
  }
  return builder.build();
}

function readEntry(builder: SampleEncryptionTableBuilder, r: ByteReader, ivSize: number): void {
  builder.read(r, ivSize, r.remaining > ivSize);
  if (r.remaining !== 0)
    throw kwError('MEDIA_MALFORMED_BOX', `aux info entry has ${r.remaining} bytes too many`, {
      box: 'saiz',
    });
}

/** Splits the samples into the spans each saio offset covers (one offset, or one per run/chunk). */
function auxSpans(
  ctx: AuxContext,
  offsets: readonly number[],
): { offset: number; first: number; count: number }[] {
  if (offsets.length === 1) return [{ offset: offsets[0]!, first: 0, count: ctx.sampleCount }];
  if (offsets.length !== ctx.runLengths.length) {
    throw kwError(
      'MEDIA_MALFORMED_BOX',
      `saio has ${offsets.length} offsets for ${ctx.runLengths.length} runs`,
      { box: 'saio' },
    );
  }
  let first = 0;
  return offsets.map((offset, k) => {
    const count = ctx.runLengths[k]!;
    const span = { offset, first, count };
    first += count;
    return span;
  });
}
