import { kwError } from '../errors/index.js';
import { parseBoxes, type Box } from '../media/box.js';
import { SYSTEM_IDS } from '../media/cenc-types.js';
import { isProtectionSystemBox, parseProtectionSystemHeader } from '../media/boxes/pssh.js';
import { declaredKids, trackCryptoDefaults } from '../media/decrypt/index.js';
import { MEDIA_CONTAINERS, parseFile } from '../media/movie.js';
import { decodePsshData } from '../media/pssh-data.js';

/** What the content says about its protection: the input of a license request. */
export interface ContentHeader {
  /** Key IDs (lower-case hex), from keywarden's pssh, the W3C common pssh and the tenc boxes. */
  readonly kids: readonly string[];
  /** Operator content id from keywarden's pssh ('' when absent). */
  readonly contentId: string;
  /** License URL from keywarden's pssh ('' when absent). */
  readonly licenseUrl: string;
  /** The raw keywarden PsshData, sent with the request so the server sees what the packager said. */
  readonly psshData: Uint8Array | undefined;
}

/**
 * Accepted initialization data, after W3C EME's initDataTypes:
 * - `cenc`: one or more concatenated 'pssh' boxes (the EME "encrypted" event payload);
 * - `keyids`: the JSON `{"kids":["base64url", ...]}` of EME's keyids format;
 * - `mp4`: an init segment (or a whole file's head) whose moov holds the pssh and tenc boxes.
 */
export type InitDataType = 'cenc' | 'keyids' | 'mp4';

/** The most init data accepted, bytes: real headers are a few KiB. */
export const MAX_INIT_DATA_BYTES = 4 << 20;

const KEYWARDEN = SYSTEM_IDS.keywarden.replaceAll('-', '');
const COMMON = SYSTEM_IDS.common.replaceAll('-', '');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Guesses the type of `data`: pssh boxes, an MP4 init segment, or keyids JSON. */
export function sniffInitDataType(data: Uint8Array): InitDataType {
  if (data.length >= 8) {
    const type = Buffer.from(data.subarray(4, 8)).toString('latin1');
    if (type === 'pssh') return 'cenc';
    if (type === 'ftyp' || type === 'moov' || type === 'styp' || type === 'moof') return 'mp4';
  }
  if (data[0] === 0x7b) return 'keyids'; // '{'
  throw kwError('HEADER_MALFORMED', 'the init data is neither pssh boxes, an MP4 nor keyids JSON');
}

/**
 * Parses EME-style init data into the KIDs, content id and license URL of the content.
 * HEADER_MALFORMED (6005) for anything that does not parse; CONTENT_NOT_PROTECTED (6017)
 * when it names no key at all.
 */
export function parseInitData(data: Uint8Array, type?: InitDataType): ContentHeader {
  if (data.length > MAX_INIT_DATA_BYTES)
    throw kwError('HEADER_MALFORMED', `the init data exceeds ${MAX_INIT_DATA_BYTES} bytes`);
  const kind = type ?? sniffInitDataType(data);
  try {
    const header = kind === 'keyids' ? fromKeyIds(data) : fromBoxes(data, kind);
    if (header.kids.length === 0 && !header.contentId)
      throw kwError('CONTENT_NOT_PROTECTED', 'the init data names no key and no content');
    return header;
  } catch (err) {
    if ((err as { code?: string }).code === 'CONTENT_NOT_PROTECTED') throw err;
    if ((err as { code?: string }).code === 'HEADER_MALFORMED') throw err;
    throw kwError(
      'HEADER_MALFORMED',
      `the ${kind} init data is malformed: ${(err as Error).message}`,
      { initDataType: kind },
      err,
    );
  }
}

function fromKeyIds(data: Uint8Array): ContentHeader {
  const parsed = JSON.parse(Buffer.from(data).toString('utf8')) as unknown;
  const kids = (parsed as { kids?: unknown }).kids;
  if (!Array.isArray(kids) || kids.some((k) => typeof k !== 'string'))
    throw kwError('HEADER_MALFORMED', 'keyids init data needs {"kids": ["base64url", ...]}');
  const out = (kids as string[]).map((k) => Buffer.from(k, 'base64url'));
  if (out.some((k) => k.length !== 16))
    throw kwError('HEADER_MALFORMED', 'a key ID in the keyids init data is not 16 bytes');
  return { kids: unique(out.map(hex)), contentId: '', licenseUrl: '', psshData: undefined };
}

function fromBoxes(data: Uint8Array, kind: InitDataType): ContentHeader {
  const psshBoxes: Box[] = [];
  const kids: string[] = [];
  if (kind === 'cenc') {
    for (const box of parseBoxes(data, 0, data.length, { containers: new Set() })) {
      if (!isProtectionSystemBox(box))
        throw kwError('HEADER_MALFORMED', `cenc init data holds a '${box.type}' box, not pssh`);
      psshBoxes.push(box);
    }
  } else {
    const file = parseFile(data);
    const collect = (boxes: readonly Box[]): void => {
      for (const b of boxes) {
        if (isProtectionSystemBox(b)) psshBoxes.push(b);
        else if (b.children && MEDIA_CONTAINERS.has(b.type)) collect(b.children);
      }
    };
    collect(file.boxes);
    for (const track of file.movie?.tracks ?? [])
      kids.push(...declaredKids(trackCryptoDefaults(track)).map(hex));
  }
  let contentId = '';
  let licenseUrl = '';
  let psshData: Uint8Array | undefined;
  for (const box of psshBoxes) {
    const p = parseProtectionSystemHeader(box);
    const system = hex(p.systemId);
    if (system === KEYWARDEN) {
      const d = decodePsshData(p.data);
      kids.push(...d.keyIds.map(hex), ...p.kids.map(hex));
      contentId ||= d.contentId;
      licenseUrl ||= d.licenseUrl;
      psshData ??= p.data;
    } else if (system === COMMON) {
      kids.push(...p.kids.map(hex));
    }
  }
  return { kids: unique(kids), contentId, licenseUrl, psshData };
}

function unique(kids: readonly string[]): string[] {
  return [...new Set(kids)].sort();
}
