import { kwError, isKeywardenError } from '../../errors/index.js';
import { boxReader, makeBox, parseBoxes, serializeBoxes, type Box } from '../box.js';
import { ByteWriter } from '../bytes.js';

/** How the fixed fields of a sample entry are laid out (ISO/IEC 14496-12 §8.5.2, §12.1-12.2). */
export type SampleEntryLayout = 'visual' | 'audio' | 'generic';

/** One entry of 'stsd': the fixed fields are kept as bytes so the entry can be rewritten losslessly. */
export interface SampleEntry {
  /** The sample entry type: 'avc1', 'mp4a', 'encv', 'enca', 'c608', ... */
  readonly format: string;
  readonly layout: SampleEntryLayout;
  readonly dataReferenceIndex: number;
  /** The fixed fields between the box header and the first child box. */
  readonly fields: Uint8Array;
  /** Child boxes (avcC, hvcC, esds, sinf, btrt, pasp, ...). Empty when the body is opaque. */
  readonly children: readonly Box[];
  /** Body bytes after the fixed fields that do not parse as boxes (kept verbatim). */
  readonly opaque?: Uint8Array;
  /** Visual entries: coded size. */
  readonly width?: number;
  readonly height?: number;
  /** Audio entries. */
  readonly channelCount?: number;
  readonly sampleSize?: number;
  readonly sampleRate?: number;
  /** The source box. */
  readonly box: Box;
}

/** A parsed 'stsd'. */
export interface SampleDescriptions {
  readonly version: number;
  readonly flags: number;
  readonly entries: readonly SampleEntry[];
}

const VISUAL_FORMATS = new Set([
  'encv',
  'avc1',
  'avc2',
  'avc3',
  'avc4',
  'hvc1',
  'hev1',
  'dvh1',
  'dvhe',
  'vp08',
  'vp09',
  'av01',
  'mp4v',
  'resv',
]);
const AUDIO_FORMATS = new Set([
  'enca',
  'mp4a',
  'ac-3',
  'ec-3',
  'ac-4',
  'Opus',
  'fLaC',
  'alac',
  'dtsc',
  'dtse',
  'dtsh',
  'dtsl',
  'mha1',
  'mhm1',
  'ipcm',
  'fpcm',
  'lpcm',
  'sowt',
  'twos',
]);

/** Sample entries sit at depth 7 (moov/trak/mdia/minf/stbl/stsd/entry); children start one deeper. */
const ENTRY_CHILD_DEPTH = 7;

/** Picks the layout from the handler type, falling back to well-known formats. */
export function sampleEntryLayout(format: string, handlerType?: string): SampleEntryLayout {
  if (handlerType === 'vide' || (handlerType === undefined && VISUAL_FORMATS.has(format)))
    return 'visual';
  if (handlerType === 'soun' || (handlerType === undefined && AUDIO_FORMATS.has(format)))
    return 'audio';
  if (VISUAL_FORMATS.has(format)) return 'visual';
  if (AUDIO_FORMATS.has(format)) return 'audio';
  return 'generic';
}

/** Parses 'stsd' (§8.5.2). `handlerType` ('vide', 'soun') selects the entry layout. */
export function parseSampleDescriptions(box: Box, handlerType?: string): SampleDescriptions {
  const r = boxReader(box);
  const { version, flags } = r.fullBoxHeader();
  const count = r.u32();
  const base = box.offset + box.headerSize;
  const boxes = parseBoxes(box.payload, r.index, box.payload.length, {
    base,
    depth: ENTRY_CHILD_DEPTH - 1,
    containers: new Set(),
  });
  if (boxes.length !== count) {
    throw kwError(
      'MEDIA_MALFORMED_BOX',
      `stsd declares ${count} entries but holds ${boxes.length}`,
      { box: 'stsd', offset: box.offset },
    );
  }
  const entries = boxes.map((b) => parseSampleEntry(b, handlerType, version));
  return { version, flags, entries };
}

/** Size of the fixed fields, after reading the layout-specific values. */
function fixedFieldsSize(box: Box, layout: SampleEntryLayout, stsdVersion: number): number {
  if (layout === 'visual') return 78;
  if (layout === 'generic') return 8;
  const r = boxReader(box);
  r.skip(8);
  const qtVersion = r.u16();
  // QuickTime sound description v1/v2 (QTFF "Sound Sample Description"); ISO files use stsd v1 instead.
  if (stsdVersion === 0 && qtVersion === 1) return 28 + 16;
  if (stsdVersion === 0 && qtVersion === 2) return 28 + 36;
  return 28;
}

/** Parses one sample entry box: fixed fields, then child boxes. */
export function parseSampleEntry(box: Box, handlerType?: string, stsdVersion = 0): SampleEntry {
  const layout = sampleEntryLayout(box.type, handlerType);
  const size = fixedFieldsSize(box, layout, stsdVersion);
  const r = boxReader(box);
  const fields = r.bytes(size);
  const dataReferenceIndex = (fields[6]! << 8) | fields[7]!;
  const base = {
    format: box.type,
    layout,
    dataReferenceIndex,
    fields,
    box,
    ...layoutValues(box, layout),
  };
  const bodyStart = r.index;
  try {
    const children = parseBoxes(box.payload, bodyStart, box.payload.length, {
      base: box.offset + box.headerSize,
      depth: ENTRY_CHILD_DEPTH,
      containers: new Set(['sinf', 'schi', 'rinf']),
    });
    return { ...base, children };
  } catch (err) {
    // Generic entries (tx3g, wvtt, ...) may carry fields we do not know: keep them verbatim.
    if (layout !== 'generic' || !isKeywardenError(err) || err.code === 'MEDIA_NESTING_TOO_DEEP')
      throw err;
    return { ...base, children: [], opaque: box.payload.subarray(bodyStart) };
  }
}

function layoutValues(box: Box, layout: SampleEntryLayout): Partial<SampleEntry> {
  const r = boxReader(box);
  if (layout === 'visual') {
    r.skip(24);
    return { width: r.u16(), height: r.u16() };
  }
  if (layout === 'audio') {
    r.skip(16);
    const channelCount = r.u16();
    const sampleSize = r.u16();
    r.skip(4);
    return { channelCount, sampleSize, sampleRate: r.u32() / 65536 };
  }
  return {};
}

/** Builds a sample entry box of type `format` from fixed fields and children (for rewriting). */
export function sampleEntryBox(format: string, entry: SampleEntry, children: readonly Box[]): Box {
  const body = new ByteWriter(entry.fields.length + 256);
  body.bytes(entry.fields);
  body.bytes(serializeBoxes(children));
  if (entry.opaque) body.bytes(entry.opaque);
  return makeBox(format, body.toBuffer());
}

/** Builds an 'stsd' box from sample entry boxes. */
export function sampleDescriptionsBox(
  version: number,
  flags: number,
  entries: readonly Box[],
): Box {
  const w = new ByteWriter(512);
  w.u8(version).u24(flags).u32(entries.length);
  w.bytes(serializeBoxes(entries));
  return makeBox('stsd', w.toBuffer());
}
