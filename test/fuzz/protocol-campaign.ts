/**
 * The protocol fuzz campaign: seeded mutations of valid signed messages at three layers
 * (the SignedMessage bytes; the SignedBody, re-signed; the payload's bytes or one of its
 * fields, re-signed with a fresh nonce so it gets past the signature and replay checks) run through every decoder,
 * verifyMessage and the code that takes the message (head-end handler or device parser),
 * and optionally a live head-end over HTTP. Anything but success or a coded KeywardenError
 * is a failure; so is a head-end error that would be a 500, an HTTP 5xx, or an HTTP timeout.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isKeywardenError } from '../../src/errors/index.js';
import { startHeadendServer, type HeadendServer } from '../../src/headend/index.js';
import { statusOf } from '../../src/headend/http/error-reply.js';
import {
  decodeMessage,
  encodeMessage,
  keywarden,
  peekMessageType,
} from '../../src/protocol/index.js';
import { Rng } from './mutator.js';
import { mutateField } from './protocol-fields.js';
import { protocolFixture, resignBody, type ProtocolSeed } from './protocol-seeds.js';
import type { CampaignSummary, FuzzFailure } from './campaign.js';
import { UNTRUSTED_DECODERS } from '../helpers/protocol-decoders.js';

const v1 = keywarden.v1;

/** Options of a protocol campaign. */
export interface ProtocolCampaignOptions {
  readonly count: number;
  readonly seed: number;
  /** Per-input limit: over it is a hang (HTTP requests are aborted at it). */
  readonly timeoutMs: number;
  /** Where reproducers of failures go. */
  readonly crashDir: string;
  /** Also POST every Nth request input to a live in-process head-end (0: never). */
  readonly httpEvery?: number;
}

/** A campaign's figures, plus what the live head-end answered. */
export interface ProtocolCampaignSummary extends CampaignSummary {
  readonly http: { readonly requests: number; readonly statuses: Record<string, number> };
}

type Layer = 'envelope' | 'body' | 'payload' | 'field';
const LAYERS: readonly Layer[] = ['envelope', 'body', 'payload', 'field', 'field'];

const HUGE_VARINT = [0xff, 0xff, 0xff, 0xff, 0x0f];

/** One byte-level mutation of a protobuf message. */
export function mutateBytes(rng: Rng, input: Uint8Array): Uint8Array {
  const b = Buffer.from(input);
  const at = rng.int(Math.max(b.length, 1));
  switch (rng.int(8)) {
    case 0: // bit flip
      if (b.length > 0) b[at]! ^= 1 << rng.int(8);
      return b;
    case 1: // interesting byte
      if (b.length > 0) b[at] = rng.pick([0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12]);
      return b;
    case 2: // truncate
      return b.subarray(0, at);
    case 3: // a huge length or varint
      return Buffer.concat([b.subarray(0, at), Buffer.from(HUGE_VARINT), b.subarray(at + 1)]);
    case 4: // duplicate a slice
      return Buffer.concat([
        b.subarray(0, at),
        b.subarray(at, at + 1 + rng.int(64)),
        b.subarray(at),
      ]);
    case 5: // remove a slice
      return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(32))]);
    case 6: // random bytes inserted
      return Buffer.concat([b.subarray(0, at), randomBytes(rng, 1 + rng.int(16)), b.subarray(at)]);
    default: // pure noise
      return randomBytes(rng, rng.int(256));
  }
}

function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
}

function mutateSome(rng: Rng, input: Uint8Array): Uint8Array {
  let out = mutateBytes(rng, input);
  for (let n = rng.int(3); n > 0; n--) out = mutateBytes(rng, out);
  return out;
}

/** A mutated message of `seed`'s kind at `layer`. */
function mutant(rng: Rng, seed: ProtocolSeed, layer: Layer, nowMs: number): Uint8Array {
  if (layer === 'envelope') return mutateSome(rng, seed.envelope);
  if (layer === 'body') {
    const body = v1.SignedMessage.decode(seed.envelope).body;
    return resignBody(seed, mutateSome(rng, body));
  }
  const body = encodeMessage(
    v1.SignedBody,
    v1.SignedBody.create({
      type: seed.type,
      nonce: randomBytes(rng, 16),
      timestampMs: nowMs,
      payload:
        (layer === 'field' && mutateField(rng, seed.fields, seed.payload)) ||
        mutateSome(rng, seed.payload),
      inReplyTo: v1.SignedBody.decode(v1.SignedMessage.decode(seed.envelope).body).inReplyTo,
    }),
  );
  return resignBody(seed, body);
}

type Outcome = { kind: 'ok' } | { kind: 'coded'; code: string } | { kind: 'crash'; error: string };

/** A thrown value as an outcome: coded errors are fine unless the head-end would answer 500. */
function judge(err: unknown, headend = false): Outcome {
  if (isKeywardenError(err)) {
    if (headend && statusOf(err) >= 500)
      return { kind: 'crash', error: `internal: ${err.code} ${err.message}` };
    return { kind: 'coded', code: err.code };
  }
  const e = err as Error | undefined;
  return { kind: 'crash', error: `${e?.name}: ${e?.message}\n${e?.stack ?? ''}` };
}

/** Decoders, the envelope peek, then the consumer; the first coded error is the outcome. */
async function runTarget(seed: ProtocolSeed, input: Uint8Array): Promise<Outcome> {
  for (const [what, cls] of UNTRUSTED_DECODERS) {
    try {
      decodeMessage(cls, input, what);
    } catch (err) {
      if (!isKeywardenError(err)) return judge(err);
    }
  }
  try {
    peekMessageType(input);
  } catch (err) {
    if (!isKeywardenError(err)) return judge(err);
  }
  try {
    await seed.consume(input);
    return { kind: 'ok' };
  } catch (err) {
    return judge(err, seed.endpoint !== undefined);
  }
}

/** POSTs to the live head-end: a 200, or a 4xx with a readable ErrorReply, within the limit. */
async function overHttp(
  server: HeadendServer,
  endpoint: string,
  input: Uint8Array,
  timeoutMs: number,
): Promise<{ status: string; failure?: string }> {
  try {
    const res = await fetch(`${server.url}${endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body: input,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = new Uint8Array(await res.arrayBuffer());
    if (res.status === 200) return { status: '200' };
    const reply = decodeMessage(v1.ErrorReply, body, 'ErrorReply');
    const status = `${res.status} ${reply.name}`;
    return res.status >= 500 ? { status, failure: `HTTP ${status}: ${reply.message}` } : { status };
  } catch (err) {
    return { status: 'error', failure: `HTTP: ${(err as Error).message}` };
  }
}

interface Tally {
  ok: number;
  coded: number;
  codes: Record<string, number>;
  failures: FuzzFailure[];
  httpRequests: number;
  statuses: Record<string, number>;
}

function saveFailure(dir: string, name: string, index: number, input: Uint8Array): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `protocol-${name}-${index}.bin`);
  writeFileSync(file, input);
  return file;
}

function record(
  t: Tally,
  o: Outcome,
  seed: ProtocolSeed,
  i: number,
  input: Uint8Array,
  dir: string,
): void {
  if (o.kind === 'ok') t.ok++;
  else if (o.kind === 'coded') {
    t.coded++;
    t.codes[o.code] = (t.codes[o.code] ?? 0) + 1;
  } else {
    const file = saveFailure(dir, seed.name, i, input);
    t.failures.push({ kind: 'crash', seed: seed.name, index: i, file, error: o.error });
  }
}

/** The live head-end first (so a valid mutant is fresh there), then the in-process target. */
async function probeHttp(
  t: Tally,
  server: HeadendServer,
  seed: ProtocolSeed,
  i: number,
  input: Uint8Array,
  opts: ProtocolCampaignOptions,
): Promise<void> {
  const r = await overHttp(server, seed.endpoint!, input, opts.timeoutMs);
  t.httpRequests++;
  t.statuses[r.status] = (t.statuses[r.status] ?? 0) + 1;
  if (r.failure) {
    const file = saveFailure(opts.crashDir, seed.name, i, input);
    t.failures.push({ kind: 'crash', seed: seed.name, index: i, file, error: r.failure });
  }
}

/** Runs `opts.count` mutated messages; the summary counts outcomes by code. */
export async function runProtocolCampaign(
  opts: ProtocolCampaignOptions,
): Promise<ProtocolCampaignSummary> {
  const started = Date.now();
  const fixture = await protocolFixture();
  const server = opts.httpEvery
    ? await startHeadendServer(fixture.headend, { port: 0 })
    : undefined;
  const t: Tally = { ok: 0, coded: 0, codes: {}, failures: [], httpRequests: 0, statuses: {} };
  const rng = new Rng(opts.seed);
  try {
    for (let i = 0; i < opts.count; i++) {
      const seed = rng.pick(fixture.seeds);
      const input = mutant(rng, seed, rng.pick(LAYERS), fixture.nowMs);
      if (server && seed.endpoint && i % opts.httpEvery! === 0)
        await probeHttp(t, server, seed, i, input, opts);
      const t0 = Date.now();
      record(t, await runTarget(seed, input), seed, i, input, opts.crashDir);
      if (Date.now() - t0 > opts.timeoutMs) {
        const file = saveFailure(opts.crashDir, seed.name, i, input);
        t.failures.push({ kind: 'hang', seed: seed.name, index: i, file });
      }
    }
  } finally {
    await server?.close();
    await fixture.close();
  }
  return {
    inputs: opts.count,
    ok: t.ok,
    coded: t.coded,
    codes: t.codes,
    failures: t.failures,
    seeds: fixture.seeds.map((s) => s.name),
    elapsedMs: Date.now() - started,
    http: { requests: t.httpRequests, statuses: t.statuses },
  };
}
