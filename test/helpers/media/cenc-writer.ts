/**
 * A small CENC/PIFF encryptor for tests: it turns a clear fragmented MP4 (default-base-is-moof,
 * each moof followed by its mdat) into an encrypted one in any of the modes the decryptor must
 * read: the four schemes, PIFF 1.1/1.3, per-sample or constant IVs, subsamples, key rotation
 * with local or global seig groups, and aux info in senc, via saiz/saio into senc, or in mdat.
 * It is deliberately independent of src/media/package (the packager) so each checks the other.
 */
import {
  makeBox,
  parseBoxes,
  serializeBoxes,
  findChild,
  type Box,
} from '../../../src/media/box.js';
import { sampleDescriptionsBox, sampleEntryBox } from '../../../src/media/boxes/index.js';
import { ByteWriter, fromUuid } from '../../../src/media/bytes.js';
import { PIFF_UUIDS, SYSTEM_IDS } from '../../../src/media/cenc-types.js';
import { rewriteTree } from '../../../src/media/decrypt/clear-boxes.js';
import { jsCipherFactory } from '../../../src/media/js-sample-cipher.js';
import { parseFile, type Movie, type Track } from '../../../src/media/movie.js';
import type { CencScheme, SampleBatch } from '../../../src/media/sample-crypto.js';
import { parseMovieFragment, type TrackFragment } from '../../../src/media/samples.js';

/** A key with its KID. */
export interface TestKey {
  readonly kid: Uint8Array;
  readonly key: Uint8Array;
}

/** How to encrypt. */
export interface EncryptSpec {
  readonly scheme: CencScheme | 'piff';
  /** PIFF AlgorithmID: 1 AES-CTR (default), 2 AES-CBC. */
  readonly piffAlgorithm?: 1 | 2;
  /** PIFF sample encryption flag 0x1: AlgorithmID, IV size and KID repeated in every fragment. */
  readonly piffOverride?: boolean;
  /** The key of each track (by id); tracks without one stay clear. */
  readonly keys: ReadonlyMap<number, TestKey>;
  readonly ivSize: 0 | 8 | 16;
  readonly constantIv?: Uint8Array;
  readonly pattern?: readonly [number, number];
  /** Subsample maps for video (NAL headers clear). Audio is always whole-sample. */
  readonly subsamples?: boolean;
  readonly aux?: 'senc' | 'saiz-senc' | 'saiz-mdat';
  /** Write a sidx before each fragment (ffmpeg 5.1 misreads fragmented CENC without one). */
  readonly sidx?: boolean;
  /** Key rotation: fragment i uses rotation[i % n], through traf-local or stbl seig groups. */
  readonly rotation?: { readonly mode: 'local' | 'global'; readonly keys: readonly TestKey[] };
}

interface Params {
  readonly kid: Uint8Array;
  readonly key: Uint8Array;
  readonly ivSize: number;
  readonly constantIv?: Uint8Array;
}

const algorithmScheme = (s: EncryptSpec): CencScheme =>
  s.scheme === 'piff' ? (s.piffAlgorithm === 2 ? 'cbc1' : 'cenc') : s.scheme;
const usesPattern = (s: CencScheme): boolean => s === 'cbcs' || s === 'cens';

/** The encryption of fragment `i` of a track: rotation entries alternate the IV size too. */
function paramsFor(spec: EncryptSpec, key: TestKey, fragment: number): Params {
  const base = {
    kid: key.kid,
    key: key.key,
    ivSize: spec.ivSize,
    ...(spec.constantIv && { constantIv: spec.constantIv }),
  };
  if (!spec.rotation || spec.ivSize === 0) return base;
  const k = spec.rotation.keys[fragment % spec.rotation.keys.length]!;
  return { ...base, kid: k.kid, key: k.key, ivSize: fragment % 2 === 0 ? 8 : 16 };
}

function seigEntry(spec: EncryptSpec, p: Params): Uint8Array {
  const w = new ByteWriter(40);
  const [crypt, skip] = spec.pattern ?? [0, 0];
  w.u8(0)
    .u8(usesPattern(algorithmScheme(spec)) ? (crypt << 4) | skip : 0)
    .u8(1)
    .u8(p.ivSize)
    .bytes(p.kid);
  if (p.ivSize === 0 && p.constantIv) w.u8(p.constantIv.length).bytes(p.constantIv);
  return w.toBuffer();
}

function sgpdBox(entries: readonly Uint8Array[]): Box {
  const w = new ByteWriter(64);
  w.u8(1).u24(0).fourcc('seig').u32(0).u32(entries.length);
  for (const e of entries) w.u32(e.length).bytes(e);
  return makeBox('sgpd', w.toBuffer());
}

function sbgpBox(count: number, index: number): Box {
  return makeBox(
    'sbgp',
    new ByteWriter(32).u32(0).fourcc('seig').u32(1).u32(count).u32(index).toBuffer(),
  );
}

function tencBox(spec: EncryptSpec, key: TestKey): Box {
  const scheme = algorithmScheme(spec);
  if (spec.scheme === 'piff') {
    const w = new ByteWriter(32)
      .u32(0)
      .u24(spec.piffAlgorithm ?? 1)
      .u8(spec.ivSize)
      .bytes(key.kid);
    return makeBox('uuid', w.toBuffer(), PIFF_UUIDS.trackEncryption);
  }
  const [crypt, skip] = spec.pattern ?? [0, 0];
  const v1 = usesPattern(scheme);
  const w = new ByteWriter(48)
    .u8(v1 ? 1 : 0)
    .u24(0)
    .u8(0)
    .u8(v1 ? (crypt << 4) | skip : 0)
    .u8(1)
    .u8(spec.ivSize)
    .bytes(key.kid);
  if (spec.ivSize === 0) w.u8(spec.constantIv!.length).bytes(spec.constantIv!);
  return makeBox('tenc', w.toBuffer());
}

function sinfBox(spec: EncryptSpec, format: string, key: TestKey): Box {
  const frma = makeBox('frma', new ByteWriter(4).fourcc(format).toBuffer());
  const type = spec.scheme;
  const schm = makeBox(
    'schm',
    new ByteWriter(12)
      .u32(0)
      .fourcc(type)
      .u32(type === 'piff' ? 0x00010001 : 0x00010000)
      .toBuffer(),
  );
  return makeBox('sinf', [frma, schm, makeBox('schi', [tencBox(spec, key)])]);
}

function encryptedStsd(track: Track, spec: EncryptSpec, key: TestKey): Box {
  const d = track.descriptions;
  const entries = d.entries.map((e) =>
    sampleEntryBox(e.layout === 'audio' ? 'enca' : 'encv', e, [
      ...e.children,
      sinfBox(spec, e.format, key),
    ]),
  );
  return sampleDescriptionsBox(d.version, d.flags, entries);
}

function commonPssh(kids: readonly Uint8Array[]): Box {
  const w = new ByteWriter(64).u8(1).u24(0).bytes(fromUuid(SYSTEM_IDS.common)).u32(kids.length);
  for (const k of kids) w.bytes(k);
  return makeBox('pssh', w.u32(0).toBuffer());
}

function encryptedMoov(movie: Movie, spec: EncryptSpec, fragmentCount: number): Box {
  const stblOf = new Map<Box, Track>();
  for (const t of movie.tracks) if (spec.keys.has(t.id)) stblOf.set(t.stbl, t);
  const moov = rewriteTree(movie.box, (box) => {
    const track = stblOf.get(box);
    if (!track) return undefined;
    const key = spec.keys.get(track.id)!;
    const children = (box.children ?? []).map((c) =>
      c.type === 'stsd' ? encryptedStsd(track, spec, key) : c,
    );
    if (spec.rotation?.mode === 'global') {
      const n = Math.min(fragmentCount, spec.rotation.keys.length * 2);
      children.push(
        sgpdBox(Array.from({ length: n }, (_, i) => seigEntry(spec, paramsFor(spec, key, i)))),
      );
    }
    return makeBox('stbl', children);
  })!;
  const kids = [...spec.keys.values(), ...(spec.rotation?.keys ?? [])].map((k) => k.kid);
  return makeBox('moov', [...(moov.children ?? []), commonPssh(kids)]);
}

function nalLengthSize(track: Track): number | undefined {
  const e = track.descriptions.entries[0];
  const cfg = e?.children.find((c) => c.type === 'avcC' || c.type === 'hvcC');
  if (!cfg) return undefined;
  return ((cfg.payload[cfg.type === 'avcC' ? 4 : 21] ?? 3) & 3) + 1;
}

/** One subsample per NAL unit: length prefix and header clear, whole blocks of the rest protected. */
function nalSubsamples(sample: Uint8Array, lengthSize: number): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos < sample.length) {
    let len = 0;
    for (let i = 0; i < lengthSize; i++) len = len * 256 + (sample[pos + i] ?? 0);
    const total = Math.min(lengthSize + len, sample.length - pos);
    const prot = Math.max(0, Math.floor((total - lengthSize - 2) / 16) * 16);
    let clear = total - prot;
    while (clear > 0xffff) {
      out.push(0xffff, 0);
      clear -= 0xffff;
    }
    out.push(clear, prot);
    pos += total;
  }
  return out;
}

interface TrafResult {
  readonly extra: Box[];
  /** Aux info per sample (IV + subsamples), concatenated. */
  readonly aux: Uint8Array;
  readonly auxSizes: number[];
}

function ivFor(trackId: number, fragment: number, index: number, size: number): Uint8Array {
  const iv = new Uint8Array(16);
  const v = new DataView(iv.buffer);
  v.setUint32(0, 0xc0ffee00 + trackId);
  v.setUint32(4, fragment * 65536 + index);
  if (size === 16) v.setUint32(8, 0x5eed0000 + index);
  return iv;
}

/** Encrypts one traf's samples in `mdat` (a copy of the payload starting at input offset `mdatStart`). */
function encryptTraf(
  tf: TrackFragment,
  track: Track,
  spec: EncryptSpec,
  fragment: number,
  mdat: Uint8Array,
  mdatStart: number,
): TrafResult {
  const p = paramsFor(spec, spec.keys.get(track.id)!, fragment);
  const scheme = algorithmScheme(spec);
  const lengthSize =
    spec.subsamples && track.handler.handlerType === 'vide' ? nalLengthSize(track) : undefined;
  const n = tf.samples.length;
  const samples = new Uint32Array(n * 4);
  const ivs = new Uint8Array(n * 16);
  const subs: number[] = [];
  const aux = new ByteWriter(1024);
  const auxSizes: number[] = [];
  tf.samples.forEach((s, i) => {
    const at = s.offset - mdatStart;
    const map = lengthSize ? nalSubsamples(mdat.subarray(at, at + s.size), lengthSize) : [];
    samples.set([at, s.size, subs.length / 2, map.length / 2], 4 * i);
    const iv =
      p.ivSize === 0 ? p.constantIv! : ivFor(track.id, fragment, i, p.ivSize).subarray(0, p.ivSize);
    ivs.set(iv, 16 * i);
    subs.push(...map);
    const before = aux.size;
    aux.bytes(p.ivSize === 0 ? new Uint8Array(0) : iv);
    if (lengthSize) {
      aux.u16(map.length / 2);
      for (let k = 0; k < map.length; k += 2) aux.u16(map[k]!).u32(map[k + 1]!);
    }
    auxSizes.push(aux.size - before);
  });
  const [crypt, skip] = usesPattern(scheme) ? (spec.pattern ?? [0, 0]) : [0, 0];
  const batch: SampleBatch = {
    scheme,
    cryptByteBlock: crypt,
    skipByteBlock: skip,
    samples,
    ivs,
    subsamples: Uint32Array.from(subs),
  };
  jsCipherFactory.create(p.key).encryptSync(mdat, batch);
  const extra: Box[] = [];
  if (spec.rotation?.mode === 'local')
    extra.push(sbgpBox(n, 0x10001), sgpdBox([seigEntry(spec, p)]));
  if (spec.rotation?.mode === 'global') {
    const len = Math.min(spec.rotation.keys.length * 2, Number.MAX_SAFE_INTEGER);
    extra.push(sbgpBox(n, (fragment % len) + 1));
  }
  return { extra, aux: aux.toBuffer(), auxSizes };
}

function sencBox(spec: EncryptSpec, res: TrafResult, p: Params, subsamples: boolean): Box {
  const override = spec.scheme === 'piff' && spec.piffOverride === true;
  const w = new ByteWriter(res.aux.length + 64)
    .u8(0)
    .u24((subsamples ? 2 : 0) | (override ? 1 : 0));
  if (override)
    w.u24(spec.piffAlgorithm ?? 1)
      .u8(p.ivSize)
      .bytes(p.kid);
  w.u32(res.auxSizes.length).bytes(res.aux);
  return spec.scheme === 'piff'
    ? makeBox('uuid', w.toBuffer(), PIFF_UUIDS.sampleEncryption)
    : makeBox('senc', w.toBuffer());
}

function saizBox(sizes: readonly number[]): Box {
  const uniform = sizes.every((s) => s === sizes[0]);
  const w = new ByteWriter(16 + sizes.length)
    .u32(0)
    .u8(uniform ? (sizes[0] ?? 0) : 0)
    .u32(sizes.length);
  if (!uniform) for (const s of sizes) w.u8(s);
  return makeBox('saiz', w.toBuffer());
}

const saioBox = (offset: number): Box =>
  makeBox('saio', new ByteWriter(12).u32(0).u32(1).u32(offset).toBuffer());

/** Adds `delta` to every trun data_offset of a traf. */
function shiftRuns(traf: Box, delta: number): Box {
  return makeBox(
    'traf',
    (traf.children ?? []).map((c) => {
      if (c.type !== 'trun' || (c.payload[3]! & 1) === 0) return c;
      const payload = Uint8Array.from(c.payload);
      const v = new DataView(payload.buffer);
      v.setInt32(8, v.getInt32(8) + delta);
      return makeBox('trun', payload);
    }),
  );
}

/** Points each traf's saio at its aux info: in its senc, or at `mdatAux[k]` bytes into the moof. */
function placeSaio(moof: Box, spec: EncryptSpec, mdatAux: readonly (number | undefined)[]): Box {
  const bytes = serializeBoxes([moof]);
  const [parsed] = parseBoxes(bytes);
  const trafs = (parsed!.children ?? []).filter((c) => c.type === 'traf');
  return makeBox(
    'moof',
    (moof.children ?? []).map((c) => {
      if (c.type !== 'traf') return c;
      const k = (moof.children ?? []).filter((x) => x.type === 'traf').indexOf(c);
      const senc = trafs[k]!.children!.find((b) => b.type === 'senc' || b.type === 'uuid');
      const override = spec.scheme === 'piff' && spec.piffOverride === true ? 20 : 0;
      const target =
        mdatAux[k] ?? (senc ? senc.offset + senc.headerSize + 8 + override : undefined);
      if (target === undefined) return c;
      return makeBox(
        'traf',
        (c.children ?? []).map((b) => (b.type === 'saio' ? saioBox(target) : b)),
      );
    }),
  );
}

/** Encrypts one moof and its mdat; returns the new pair. */
function encryptFragment(
  moof: Box,
  mdat: Box,
  movie: Movie,
  spec: EncryptSpec,
  index: number,
): [Box, Box] {
  const fragment = parseMovieFragment(moof, movie);
  const payload = Uint8Array.from(mdat.payload);
  const mdatStart = mdat.offset + mdat.headerSize;
  const prefix: Uint8Array[] = [];
  const trafs = new Map<Box, Box>();
  const mdatAuxAt: (number | undefined)[] = [];
  for (const tf of fragment.trafs) {
    const track = movie.tracks.find((t) => t.id === tf.trackId)!;
    if (!spec.keys.has(track.id) || tf.samples.length === 0) {
      mdatAuxAt.push(undefined);
      continue;
    }
    const res = encryptTraf(tf, track, spec, index, payload, mdatStart);
    const p = paramsFor(spec, spec.keys.get(track.id)!, index);
    const subsamples = spec.subsamples === true && track.handler.handlerType === 'vide';
    const aux = spec.aux ?? 'senc';
    const added = [...res.extra];
    if (aux !== 'senc') added.push(saizBox(res.auxSizes), saioBox(0));
    if (aux !== 'saiz-mdat') added.push(sencBox(spec, res, p, subsamples));
    mdatAuxAt.push(aux === 'saiz-mdat' ? prefix.reduce((n, b) => n + b.length, 0) : undefined);
    if (aux === 'saiz-mdat') prefix.push(res.aux);
    const children = tf.box.children ?? [];
    const firstRun = children.findIndex((c) => c.type === 'trun');
    trafs.set(
      tf.box,
      makeBox('traf', [...children.slice(0, firstRun), ...added, ...children.slice(firstRun)]),
    );
  }
  let out = makeBox(
    'moof',
    (moof.children ?? []).map((c) => trafs.get(c) ?? c),
  );
  const prefixLength = prefix.reduce((n, b) => n + b.length, 0);
  const delta = out.size - moof.size + prefixLength;
  out = makeBox(
    'moof',
    (out.children ?? []).map((c) => (c.type === 'traf' ? shiftRuns(c, delta) : c)),
  );
  out = placeSaio(
    out,
    spec,
    mdatAuxAt.map((at) => (at === undefined ? undefined : out.size + 8 + at)),
  );
  return [out, makeBox('mdat', Buffer.concat([...prefix, payload]))];
}

/** A sidx with one reference to the moof + mdat that follow (durations are nominal). */
function segmentIndex(movie: Movie, [moof, mdat]: [Box, Box]): Box {
  const track = movie.tracks[0]!;
  const w = new ByteWriter(44)
    .u32(0)
    .u32(track.id)
    .u32(track.media.timescale)
    .u32(0)
    .u32(0)
    .u16(0)
    .u16(1);
  w.u32(moof.size + mdat.size)
    .u32(track.media.timescale)
    .u32(0x90000000);
  return makeBox('sidx', w.toBuffer());
}

/** Encrypts a clear fragmented MP4 held in memory. */
export function encryptFragmented(clear: Uint8Array, spec: EncryptSpec): Buffer {
  const parsed = parseFile(clear);
  const movie = parsed.movie!;
  const boxes = parsed.boxes;
  const fragments = boxes.filter((b) => b.type === 'moof').length;
  const out: Box[] = [findChild(boxes, 'ftyp')!, encryptedMoov(movie, spec, fragments)];
  let index = 0;
  boxes.forEach((b, i) => {
    if (b.type !== 'moof') return;
    const mdat = boxes[i + 1];
    if (mdat?.type !== 'mdat') throw new Error('test encryptor: moof not followed by mdat');
    const pair = encryptFragment(b, mdat, movie, spec, index++);
    if (spec.sidx) out.push(segmentIndex(movie, pair));
    out.push(...pair);
  });
  return serializeBoxes(out);
}
