/**
 * Field-level mutations of protocol payloads: decode a valid payload to a plain object, set
 * one leaf (bytes, string, number, bool, list) to a hostile value, encode it again. These
 * get past the decoder and reach the business rules (KIDs, versions, ids, reasons).
 */
import type { IConversionOptions } from 'protobufjs';
import type { Rng } from './mutator.js';

type Plain = { [k: string]: unknown };

/** A generated message class, as far as field mutations need it. */
export interface PlainClass<T> {
  decode(bytes: Uint8Array): T;
  toObject(message: T, options?: IConversionOptions): Plain;
  fromObject(object: Plain): T;
  encode(message: T): { finish(): Uint8Array };
}

/** Payload bytes ↔ plain objects for one message class. */
export interface FieldCodec {
  toPlain(payload: Uint8Array): Plain;
  fromPlain(object: Plain): Uint8Array;
}

/** The codec of `cls` (longs as numbers, enums as numbers, defaults filled in). */
export function fieldCodec<T>(cls: PlainClass<T>): FieldCodec {
  return {
    toPlain: (p) => cls.toObject(cls.decode(p), { longs: Number, enums: Number, defaults: true }),
    fromPlain: (o) => cls.encode(cls.fromObject(o)).finish(),
  };
}

interface Leaf {
  readonly parent: Plain | unknown[];
  readonly key: string | number;
  readonly value: unknown;
}

function leaves(node: unknown, out: Leaf[] = []): Leaf[] {
  if (node instanceof Uint8Array || node === null || typeof node !== 'object') return out;
  const entries: [string | number, unknown][] = Array.isArray(node)
    ? node.map((v, i) => [i, v])
    : Object.entries(node);
  for (const [key, value] of entries) {
    out.push({ parent: node as Plain, key, value });
    leaves(value, out);
  }
  return out;
}

function hostileBytes(rng: Rng, v: Uint8Array): Uint8Array {
  const n = rng.pick([0, 1, 15, 17, 31, 33, 65, 4096]);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next() < 0.5 ? (v[i] ?? 0) : rng.int(256);
  return out;
}

const STRINGS = [
  '',
  'A'.repeat(5000),
  '../../etc/passwd',
  '\u0000',
  '9999.9999.9999',
  '💥',
  'v1.0',
];
const NUMBERS = [0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 2 ** 32, Number.MAX_SAFE_INTEGER, 99];

function hostile(rng: Rng, value: unknown): unknown {
  if (value instanceof Uint8Array) return hostileBytes(rng, value);
  if (typeof value === 'string') return rng.pick(STRINGS);
  if (typeof value === 'number') return rng.pick(NUMBERS);
  if (typeof value === 'boolean') return !value;
  if (Array.isArray(value)) return rng.next() < 0.5 ? [] : [...value, ...value];
  return {};
}

/** `payload` with one field set to a hostile value; undefined when it cannot be re-encoded. */
export function mutateField(
  rng: Rng,
  codec: FieldCodec,
  payload: Uint8Array,
): Uint8Array | undefined {
  const plain = codec.toPlain(payload);
  const all = leaves(plain);
  if (all.length === 0) return undefined;
  const leaf = rng.pick(all);
  (leaf.parent as Record<string | number, unknown>)[leaf.key] = hostile(rng, leaf.value);
  try {
    return codec.fromPlain(plain);
  } catch {
    // The generated encoder refuses some shapes (an object for a scalar): not a finding.
    return undefined;
  }
}
