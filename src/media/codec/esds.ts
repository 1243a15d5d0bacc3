import { kwError } from '../../errors/index.js';
import { ByteReader } from '../bytes.js';

/** Descriptor tags of ISO/IEC 14496-1 §7.2.2.1. */
const TAG = { esDescriptor: 0x03, decoderConfig: 0x04 } as const;

/** objectTypeIndication values that are AAC: MPEG-4 Audio and MPEG-2 AAC Main/LC/SSR (ISO/IEC 14496-1 Table 5). */
const AAC_OBJECT_TYPES: ReadonlySet<number> = new Set([0x40, 0x66, 0x67, 0x68]);

/** Reads a descriptor's tag and its 7-bits-per-byte size (§8.3.3 expandable class). */
function readDescriptorHeader(r: ByteReader): { tag: number; size: number } {
  const tag = r.u8();
  let size = 0;
  for (let i = 0; i < 4; i++) {
    const b = r.u8();
    size = size * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) return { tag, size };
  }
  throw kwError('MEDIA_MALFORMED_BOX', 'esds: descriptor size longer than 4 bytes', {
    box: 'esds',
  });
}

/**
 * The objectTypeIndication of an 'esds' payload (ISO/IEC 14496-14 §5.6): the ES_Descriptor's
 * DecoderConfigDescriptor says which codec an 'mp4a' (or 'mp4v') entry holds.
 */
export function esdsObjectType(payload: Uint8Array): number {
  const r = new ByteReader(payload, 0, payload.length, 'esds');
  r.fullBoxHeader();
  const es = readDescriptorHeader(r);
  if (es.tag !== TAG.esDescriptor)
    throw kwError('MEDIA_MALFORMED_BOX', `esds: tag ${es.tag} is not an ES_Descriptor`, {
      box: 'esds',
    });
  r.skip(2); // ES_ID
  const flags = r.u8();
  if (flags & 0x80) r.skip(2); // dependsOn_ES_ID
  if (flags & 0x40) r.skip(r.u8()); // URL
  if (flags & 0x20) r.skip(2); // OCR_ES_Id
  const dc = readDescriptorHeader(r);
  if (dc.tag !== TAG.decoderConfig)
    throw kwError('MEDIA_MALFORMED_BOX', `esds: tag ${dc.tag} is not a DecoderConfigDescriptor`, {
      box: 'esds',
    });
  return r.u8();
}

/** True when an esds payload describes AAC. */
export function isAacEsds(payload: Uint8Array): boolean {
  return AAC_OBJECT_TYPES.has(esdsObjectType(payload));
}
