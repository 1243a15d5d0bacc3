import { kwError } from '../../errors/index.js';
import { boxReader, type Box } from '../box.js';
import { PIFF_UUIDS, type ProtectionSystemHeader } from '../cenc-types.js';

/** A pssh as found in a file: the header plus where it came from. */
export interface FoundProtectionSystemHeader extends ProtectionSystemHeader {
  /** True for PIFF's uuid-typed pssh (PIFF 1.1 §5.3.1). */
  readonly piff: boolean;
  readonly offset: number;
}

/** True for a 'pssh' box or PIFF's protection system uuid box. */
export function isProtectionSystemBox(box: Box): boolean {
  return box.type === 'pssh' || (box.type === 'uuid' && box.uuid === PIFF_UUIDS.protectionSystem);
}

/** Parses 'pssh' v0/v1 (ISO/IEC 23001-7 §8.1) or the PIFF uuid variant. */
export function parseProtectionSystemHeader(box: Box): FoundProtectionSystemHeader {
  const r = boxReader(box);
  const { version } = r.fullBoxHeader();
  const piff = box.type === 'uuid';
  const systemId = Uint8Array.from(r.bytes(16));
  const kids: Uint8Array[] = [];
  if (version === 1 && !piff) {
    const count = r.u32();
    r.need(count * 16, 'KID list');
    for (let i = 0; i < count; i++) kids.push(Uint8Array.from(r.bytes(16)));
  } else if (version > 1) {
    throw kwError('MEDIA_UNSUPPORTED', `pssh version ${version}`, {
      box: 'pssh',
      offset: box.offset,
    });
  }
  const size = r.u32();
  const data = Uint8Array.from(r.bytes(size));
  return { version, systemId, kids, data, piff, offset: box.offset };
}
