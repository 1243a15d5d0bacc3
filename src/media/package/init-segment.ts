import { findChild, makeBox, serializeBoxes, type Box } from '../box.js';
import { sampleDescriptionsBox, sampleEntryBox } from '../boxes/index.js';
import { ByteWriter } from '../bytes.js';
import type { ProtectionSystemHeader, TrackEncryption } from '../cenc-types.js';
import type { Movie, Track } from '../movie.js';
import type { CencScheme } from '../sample-crypto.js';
import { sinfBox, writePssh } from './cenc-boxes.js';

/** How one track's sample entry is protected in the init segment. */
export interface InitTrackProtection {
  readonly scheme: CencScheme;
  readonly tencVersion: 0 | 1;
  /** The defaults written to 'tenc' (default KID, pattern, IV size, constant IV). */
  readonly defaults: TrackEncryption;
}

/** One track of the output. */
export interface InitTrack {
  readonly track: Track;
  /** Undefined for a track copied clear. */
  readonly protection?: InitTrackProtection;
}

/** What goes into the init segment. */
export interface InitSegmentSpec {
  readonly movie: Movie;
  readonly tracks: readonly InitTrack[];
  readonly pssh: readonly ProtectionSystemHeader[];
}

/** ftyp brands: ISO BMFF with fragments (iso6 implies the tfdt and default-base-is-moof we use). */
const BRANDS = { major: 'iso6', compatible: ['iso6', 'iso5', 'mp41', 'dash'] } as const;

/** Writes ftyp + moov (mvhd, one trak per track with empty sample tables, mvex, pssh). */
export function writeInitSegment(spec: InitSegmentSpec): Buffer {
  const w = new ByteWriter(4096);
  w.box('ftyp', (b) => {
    b.fourcc(BRANDS.major).u32(0);
    for (const c of BRANDS.compatible) b.fourcc(c);
  });
  const moovChildren: Box[] = [
    childOf(spec.movie.box, 'mvhd'),
    ...spec.tracks.map((t) => trakBox(t)),
    mvexBox(spec.movie, spec.tracks),
    ...spec.pssh.map(psshBox),
  ];
  w.bytes(serializeBoxes([makeBox('moov', moovChildren)]));
  return w.toBuffer();
}

function childOf(parent: Box, type: string): Box {
  const b = findChild(parent, type);
  if (!b) throw new Error(`internal: '${parent.type}' lost its '${type}'`);
  return b;
}

/** Keeps the listed child types of a container in their order, replacing some. */
function rebuild(
  parent: Box,
  keep: readonly string[],
  replace: Readonly<Record<string, Box>> = {},
): Box {
  const children = (parent.children ?? [])
    .filter((c) => keep.includes(c.type))
    .map((c) => replace[c.type] ?? c);
  return makeBox(parent.type, children);
}

/** trak: tkhd, tref, edts (the edit list keeps presentation timing), mdia with an empty stbl. */
function trakBox(t: InitTrack): Box {
  const trak = t.track.box;
  const mdia = childOf(trak, 'mdia');
  const minf = childOf(mdia, 'minf');
  const newMinf = rebuild(minf, ['vmhd', 'smhd', 'hmhd', 'nmhd', 'sthd', 'gmhd', 'dinf', 'stbl'], {
    stbl: stblBox(t),
  });
  const withDinf = findChild(minf, 'dinf')
    ? newMinf
    : makeBox('minf', [...(newMinf.children ?? []), dinfBox()]);
  const newMdia = rebuild(mdia, ['mdhd', 'hdlr', 'elng', 'minf'], { minf: withDinf });
  return rebuild(trak, ['tkhd', 'tref', 'edts', 'mdia'], { mdia: newMdia });
}

/** stbl with the (rewritten) stsd and empty tables: samples live in the fragments (§8.8.1). */
function stblBox(t: InitTrack): Box {
  const d = t.track.descriptions;
  const entries = d.entries.map((e) => {
    if (!t.protection) return e.box;
    const p = t.protection;
    const type = e.layout === 'audio' ? 'enca' : 'encv';
    return sampleEntryBox(type, e, [
      ...e.children,
      sinfBox(e.format, p.scheme, p.defaults, p.tencVersion),
    ]);
  });
  return makeBox('stbl', [
    sampleDescriptionsBox(d.version, d.flags, entries),
    fullBox('stts', (b) => b.u32(0)),
    fullBox('stsc', (b) => b.u32(0)),
    fullBox('stsz', (b) => b.u32(0).u32(0)),
    fullBox('stco', (b) => b.u32(0)),
  ]);
}

function fullBox(type: string, body: (w: ByteWriter) => void, version = 0, flags = 0): Box {
  const w = new ByteWriter(64);
  w.u8(version).u24(flags);
  body(w);
  return makeBox(type, w.toBuffer());
}

function dinfBox(): Box {
  const url = fullBox('url ', () => undefined, 0, 1); // flag 1: media in this file
  return makeBox('dinf', [fullBox('dref', (b) => b.u32(1).bytes(serializeBoxes([url])))]);
}

/** mvex: mehd with the movie duration (when known) and a trex per track (§8.8.2-8.8.3). */
function mvexBox(movie: Movie, tracks: readonly InitTrack[]): Box {
  const children: Box[] = [];
  if (movie.header.duration > 0)
    children.push(fullBox('mehd', (b) => b.u64(movie.header.duration), 1));
  for (const t of tracks) {
    children.push(fullBox('trex', (b) => b.u32(t.track.id).u32(1).u32(0).u32(0).u32(0)));
  }
  return makeBox('mvex', children);
}

function psshBox(p: ProtectionSystemHeader): Box {
  const w = new ByteWriter(128);
  writePssh(w, p);
  return makeBox('pssh', w.view().subarray(8));
}
