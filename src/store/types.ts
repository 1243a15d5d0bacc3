import { kwError, type KeywardenError } from '../errors/index.js';

/** Lifecycle state of a stored license. */
export type LicenseState = 'active' | 'release-pending';

/** Usage state of a license, guarded against rollback by its generation. */
export interface UsageState {
  /** 'release-pending': released locally, the server has not acknowledged yet. */
  readonly state: LicenseState;
  /** Time of the first play (ms since the epoch, trusted clock); absent until played. */
  readonly firstPlayMs?: number;
  /** Time of the latest play. */
  readonly lastPlayMs?: number;
  /** Number of plays. */
  readonly playCount: number;
  /**
   * Rises with every durable change of the license (put, renewal, usage update). A license
   * file whose generation is not the index's is an older copy: STORE_ROLLBACK.
   */
  readonly generation: number;
}

/** What the caller may change with LicenseStore.updateUsage (the generation is the store's). */
export type UsagePatch = Partial<Omit<UsageState, 'generation'>>;

/** A license as the agent hands it to the store. The body is opaque to the store. */
export interface LicenseRecord {
  /** License id (unique in the store). */
  readonly id: string;
  /** Key ids the license carries, 16 bytes each as 32 hex digits (stored lower case). */
  readonly kids: readonly string[];
  /** Content id the license is for ('' when not known). */
  readonly contentId: string;
  /**
   * Small JSON facts the agent wants without decrypting the license (kind, rootIds,
   * expiresAtMs, ...). Kept in the index, so it is limited to 16 KiB of JSON.
   */
  readonly meta: Readonly<Record<string, unknown>>;
  /** The signed license bytes, opaque to the store. */
  readonly body: Uint8Array;
}

/** A license read back with LicenseStore.get: the record and its usage. */
export interface StoredLicense extends LicenseRecord {
  readonly usage: UsageState;
}

/** What the in-memory index knows of a license, without decrypting its file. */
export interface IndexEntry {
  readonly id: string;
  readonly kids: readonly string[];
  readonly contentId: string;
  readonly meta: Readonly<Record<string, unknown>>;
  readonly usage: UsageState;
  /**
   * Set when the store could not vouch for this entry's freshness after detecting a
   * rollback (an index rebuilt from license files that do not match the anchor). get and
   * updateUsage refuse it with STORE_ROLLBACK; remove it, or put a fresh license.
   */
  readonly refused?: 'rollback';
}

/** Something the store found wrong with one of its files. */
export interface StoreProblem {
  /** The license concerned, when known. */
  readonly id?: string;
  /** The file concerned. */
  readonly file: string;
  /** The coded error (STORE_TAMPERED, STORE_ROLLBACK, STORE_CORRUPT, ...). */
  readonly error: KeywardenError;
}

/** Most bytes of a license id (UTF-8). */
export const MAX_ID_BYTES = 1024;
/** Most bytes of a content id (UTF-8). */
export const MAX_CONTENT_ID_BYTES = 1024;
/** Most key ids per license. */
export const MAX_KIDS = 4096;
/** Most bytes of a record's meta, as JSON. */
export const MAX_META_BYTES = 16 * 1024;

const STATES: readonly LicenseState[] = ['active', 'release-pending'];
const KID_RE = /^[0-9a-f]{32}$/;

/** A record checked and normalized (kids lower case and unique, meta a JSON copy). */
export interface NormalizedRecord {
  readonly id: string;
  readonly kids: readonly string[];
  readonly contentId: string;
  readonly meta: Readonly<Record<string, unknown>>;
  readonly body: Uint8Array;
}

/**
 * Checks a record from the caller; LICENSE_PROCESSING_FAILED when malformed, STORE_TOO_LARGE
 * when its meta exceeds {@link MAX_META_BYTES}.
 */
export function normalizeRecord(record: LicenseRecord): NormalizedRecord {
  const bad = (message: string): never => {
    throw kwError('LICENSE_PROCESSING_FAILED', `cannot store the license: ${message}`, {
      id: typeof record?.id === 'string' ? record.id : undefined,
    });
  };
  if (typeof record !== 'object' || record === null) bad('the record is not an object');
  const { id, kids, contentId, meta, body } = record;
  if (typeof id !== 'string' || id.length === 0) bad('the id is empty');
  if (Buffer.byteLength(id) > MAX_ID_BYTES) bad(`the id exceeds ${MAX_ID_BYTES} bytes`);
  if (typeof contentId !== 'string') bad('the content id is not a string');
  if (Buffer.byteLength(contentId) > MAX_CONTENT_ID_BYTES) {
    bad(`the content id exceeds ${MAX_CONTENT_ID_BYTES} bytes`);
  }
  if (!Array.isArray(kids) || kids.length > MAX_KIDS) bad('kids is not a list of key ids');
  const normKids = [...new Set(kids.map((k) => (typeof k === 'string' ? k.toLowerCase() : '')))];
  if (normKids.some((k) => !KID_RE.test(k))) bad('a key id is not 32 hex digits');
  if (!(body instanceof Uint8Array)) bad('the body is not bytes');
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    bad('meta is not a JSON object');
  }
  let json: string;
  try {
    json = JSON.stringify(meta);
  } catch {
    return bad('meta is not JSON');
  }
  if (Buffer.byteLength(json) > MAX_META_BYTES) {
    throw kwError('STORE_TOO_LARGE', `the license meta exceeds ${MAX_META_BYTES} bytes of JSON`, {
      id,
    });
  }
  return {
    id,
    kids: normKids,
    contentId,
    meta: deepFreeze(JSON.parse(json) as Record<string, unknown>),
    body,
  };
}

/** Applies a caller's usage patch; LICENSE_PROCESSING_FAILED when a field is malformed. */
export function applyUsagePatch(usage: UsageState, patch: UsagePatch, id: string): UsageState {
  const bad = (message: string): never => {
    throw kwError('LICENSE_PROCESSING_FAILED', `cannot update the usage: ${message}`, { id });
  };
  if (typeof patch !== 'object' || patch === null) bad('the update is not an object');
  const next: Record<string, unknown> = { ...usage };
  for (const [k, v] of Object.entries(patch)) {
    if (k === 'generation') {
      if (v !== undefined) bad('the generation is kept by the store');
      continue;
    } else if (k === 'state') {
      if (!STATES.includes(v as LicenseState)) bad(`state '${String(v)}' is unknown`);
    } else if (k === 'playCount') {
      if (!Number.isSafeInteger(v) || (v as number) < 0) bad('playCount is not a count');
    } else if (k === 'firstPlayMs' || k === 'lastPlayMs') {
      if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) {
        bad(`${k} is not a time`);
      }
    } else {
      bad(`'${k}' is not a usage field`);
    }
    if (v === undefined) delete next[k];
    else next[k] = v;
  }
  return freezeUsage(next as unknown as UsageState);
}

/** A fresh usage state for a newly stored license. */
export function freshUsage(generation: number): UsageState {
  return freezeUsage({ state: 'active', playCount: 0, generation });
}

/** Checks a usage state read back from an authenticated file (defence in depth). */
export function isUsageState(v: unknown): v is UsageState {
  if (typeof v !== 'object' || v === null) return false;
  const u = v as Record<string, unknown>;
  const time = (t: unknown) => t === undefined || (typeof t === 'number' && Number.isFinite(t));
  return (
    STATES.includes(u.state as LicenseState) &&
    Number.isSafeInteger(u.playCount) &&
    Number.isSafeInteger(u.generation) &&
    time(u.firstPlayMs) &&
    time(u.lastPlayMs)
  );
}

/** A frozen copy of a usage state with only its known fields. */
export function freezeUsage(u: UsageState): UsageState {
  return Object.freeze({
    state: u.state,
    ...(u.firstPlayMs !== undefined && { firstPlayMs: u.firstPlayMs }),
    ...(u.lastPlayMs !== undefined && { lastPlayMs: u.lastPlayMs }),
    playCount: u.playCount,
    generation: u.generation,
  });
}

/** Freezes a JSON value in depth (index entries are shared with callers). */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}
