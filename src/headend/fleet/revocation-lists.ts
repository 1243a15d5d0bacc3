import { kwError } from '../../errors/index.js';
import { encodeMessage } from '../../protocol/codec.js';
import { MessageType, signMessage } from '../../protocol/envelope.js';
import { keywarden } from '../../protocol/generated/proto.js';
import type { HeadendContext } from '../headend.js';
import type {
  IssuedListRow,
  RevocationKind,
  RevocationRow,
  RevocationSnapshot,
} from '../store/repository.js';

const v1 = keywarden.v1;
const Kind = v1.RevocationEntry.Kind;

/** Default validity of a list: devices must have a newer one 24 h after it was issued. */
export const DEFAULT_LIST_INTERVAL_MS = 24 * 3600_000;

/** Wire kind of a stored entry kind. */
export const KIND_OF: Readonly<Record<RevocationKind, keywarden.v1.RevocationEntry.Kind>> = {
  device: Kind.DEVICE,
  license: Kind.LICENSE,
  key: Kind.KEY,
  content: Kind.CONTENT,
};

/** What a list is made of (pure input of {@link buildRevocationList}). */
export interface ListInput {
  /** The latest issued list number (0: none); the new list is the next. */
  readonly previousNumber: number;
  readonly issuedAt: number;
  readonly intervalMs: number;
  readonly entries: readonly RevocationRow[];
  readonly minAgentVersion: string;
}

/**
 * The complete RevocationList that follows list `previousNumber`: number + 1, issued now,
 * next update one interval later, every entry (oldest first), the minimum agent version.
 */
export function buildRevocationList(input: ListInput): keywarden.v1.RevocationList {
  if (!Number.isSafeInteger(input.previousNumber) || input.previousNumber < 0)
    throw kwError('HEADEND_INTERNAL', `bad list number ${input.previousNumber}`);
  if (!(input.intervalMs > 0))
    throw kwError('HEADEND_INTERNAL', `bad list interval ${input.intervalMs}`);
  return v1.RevocationList.create({
    number: input.previousNumber + 1,
    issuedAtMs: input.issuedAt,
    nextUpdateMs: input.issuedAt + input.intervalMs,
    entries: input.entries.map((e) =>
      v1.RevocationEntry.create({
        kind: KIND_OF[e.kind],
        value: e.value,
        revokedAtMs: e.revokedAt,
        reason: e.reason,
      }),
    ),
    minAgentVersion: input.minAgentVersion,
  });
}

/**
 * True when a new list must be issued: none yet, entries changed since the latest, or the
 * latest is in the last quarter of its validity (so devices get a fresh one in time).
 */
export function listDue(snapshot: RevocationSnapshot, now: number, intervalMs: number): boolean {
  const latest = snapshot.latest;
  if (!latest) return true;
  if (latest.revision !== snapshot.revision) return true;
  return now >= latest.nextUpdate - intervalMs / 4;
}

/** Canonical form of an entry's value: KIDs are 32 lowercase hex digits. */
export function canonicalRevocation(kind: RevocationKind, value: string): string {
  const v = value.trim();
  if (v === '' || v.length > 256 || /[\s/+#]/.test(v))
    throw kwError('CLI_USAGE', `'${value}' is not a valid ${kind} id`);
  if (kind !== 'key') return v;
  const hex = v.toLowerCase().replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/.test(hex))
    throw kwError('CLI_USAGE', `a KID is 16 bytes as 32 hex digits, not '${value}'`);
  return hex;
}

/** What {@link RevocationLists.revoke} did. */
export interface RevokeOutcome {
  readonly kind: RevocationKind;
  readonly value: string;
  /** False when it was revoked before (nothing changed). */
  readonly added: boolean;
  /** The latest list after the call. */
  readonly list: IssuedListRow;
}

/**
 * Revocation lists: records entries and issues signed, numbered lists into the store.
 * Issuing is a compare-and-set on the list number, so any process (the CLI, the primary's
 * publisher, a worker answering GET /v1/fleet/revocations) may issue and numbers stay
 * strictly increasing without gaps.
 */
export class RevocationLists {
  constructor(
    private readonly ctx: HeadendContext,
    readonly intervalMs = DEFAULT_LIST_INTERVAL_MS,
  ) {}

  /** Records a revocation (a device is also revoked in the device table) and issues a list. */
  async revoke(kind: RevocationKind, value: string, reason: string): Promise<RevokeOutcome> {
    const v = canonicalRevocation(kind, value);
    const now = this.ctx.clock();
    if (kind === 'device') await this.ctx.store.revokeDevice(v, now, reason);
    const { added } = await this.ctx.store.addRevocation({
      kind,
      value: v,
      revokedAt: now,
      reason,
    });
    return { kind, value: v, added, list: await this.issue() };
  }

  /**
   * Issues a new list when one is due ({@link listDue}) or `force`, and returns the latest.
   * Another process issuing meanwhile makes the store answer 'stale': re-read and retry.
   */
  async issue(force = false): Promise<IssuedListRow> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const snap = await this.ctx.store.revocationSnapshot();
      const now = this.ctx.clock();
      if (!force && snap.latest && !listDue(snap, now, this.intervalMs)) return snap.latest;
      const settings = await this.ctx.currentSettings();
      const list = buildRevocationList({
        previousNumber: snap.latest?.number ?? 0,
        issuedAt: now,
        intervalMs: this.intervalMs,
        entries: snap.entries,
        minAgentVersion: settings.minAgentVersion,
      });
      const payload = encodeMessage(v1.RevocationList, list);
      const signed = signMessage(
        MessageType.FLEET_REVOCATION_LIST,
        payload,
        this.ctx.pki.signer('fleet'),
        { nowMs: now },
      );
      const row: IssuedListRow = {
        number: Number(list.number),
        revision: snap.revision,
        issuedAt: now,
        nextUpdate: now + this.intervalMs,
        signed: Buffer.from(signed),
      };
      if ((await this.ctx.store.recordRevocationList(row)) === 'recorded') return row;
      force = false;
    }
    const latest = await this.ctx.store.latestRevocationList();
    if (latest) return latest;
    throw kwError('STORE_FAILED', 'could not issue a revocation list');
  }

  /** The latest list, issuing the first one if there is none. */
  async latest(): Promise<IssuedListRow> {
    return (await this.ctx.store.latestRevocationList()) ?? this.issue();
  }
}
