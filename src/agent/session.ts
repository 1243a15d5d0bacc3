import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isKeywardenError, kwError, type KeywardenError } from '../errors/index.js';
import { decryptBytes, type ContentKey } from '../media/decrypt/index.js';
import type { SampleCipherFactory } from '../media/sample-crypto.js';
import { fragmentNeeds, hasMovieHeader } from './fragment-kids.js';
import type { ContentHeader } from './init-data.js';
import type { LicenseManager } from './license-manager.js';
import type { KeyStatus } from './policy/types.js';

/** Events of a {@link Session}, after W3C EME's MediaKeySession. */
export interface SessionEvents {
  /** Some key's status changed; read {@link Session.keyStatuses}. */
  keystatuseschange: [ReadonlyMap<string, KeyStatus>];
  /** A key the session needs is being acquired (first use, or the next rotation period). */
  'acquiring-key': [{ kids: readonly string[] }];
  /** A background acquisition or an embedded license failed; decrypts needing the key are refused. */
  problem: [KeywardenError];
  /** The session was closed. */
  closed: [];
}

/** Options of a session. */
export interface SessionOptions {
  /** The application consuming the keys (application-restricted media). */
  readonly applicationId?: string;
  /** The init segment, when the init data was not one. */
  readonly init?: Uint8Array;
  /** Acquire missing keys automatically (default true). */
  readonly autoAcquire?: boolean;
  /** The AES implementation (default: the native addon). */
  readonly cipherFactory?: SampleCipherFactory;
}

/** What a session asks of the agent. */
export interface SessionHost {
  readonly licenses: LicenseManager;
  /** Acquires a license for `kids` of this content. */
  acquireFor(header: ContentHeader, kids: readonly string[], signal?: AbortSignal): Promise<void>;
  /**
   * Engages the output protection license `licenseId` needs and waits until it is settled
   * (engaged, failed or timed out): before a key is first used.
   */
  settleOutputs?(licenseId: string, signal?: AbortSignal): Promise<void>;
}

/**
 * A playback session (W3C EME / OpenCDM shape): created from the content's init data, it
 * reports key statuses and decrypts fragments with the native decryptor, but only while
 * the policy engine says the keys are usable. Every refusal is a coded error: the policy's
 * own (LICENSE_EXPIRED, ROOT_LICENSE_MISSING, ...) or KEY_NOT_USABLE.
 */
export class Session extends EventEmitter<SessionEvents> {
  readonly id = randomUUID();
  private statuses = new Map<string, KeyStatus>();
  private closed = false;
  private clearInitLength: number | undefined;
  private readonly played = new Set<string>();
  private readonly prefetched = new Set<string>();
  private readonly acquiring = new Map<string, Promise<void>>();
  private init: Uint8Array | undefined;

  private content: ContentHeader;

  constructor(
    private readonly host: SessionHost,
    header: ContentHeader,
    private readonly opts: SessionOptions = {},
  ) {
    super();
    this.content = header;
    this.init = opts.init;
    for (const kid of header.kids) this.statuses.set(kid, 'status-pending');
  }

  /** What the session knows of the content: KIDs, content id, license URL (pssh, fragments). */
  get header(): ContentHeader {
    return this.content;
  }

  /** Key statuses by KID (hex). */
  keyStatuses(): ReadonlyMap<string, KeyStatus> {
    return new Map(this.statuses);
  }

  /** Re-evaluates every key against the policy now; emits keystatuseschange on a change. */
  async refresh(): Promise<ReadonlyMap<string, KeyStatus>> {
    await this.resolveKeys([...this.statuses.keys()]);
    return this.keyStatuses();
  }

  /** Gets licenses for every key of the content that has none (or a pending one). */
  async load(signal?: AbortSignal): Promise<ReadonlyMap<string, KeyStatus>> {
    this.ensureOpen();
    const missing = (await this.resolveKeys(this.header.kids)).missing;
    if (missing.length > 0 || this.header.kids.length === 0) {
      await this.acquire(missing, signal);
      await this.resolveKeys(this.header.kids);
    }
    return this.keyStatuses();
  }

  /**
   * Decrypts one fragment (moof+mdat, or a run of them; or a whole file with its moov) and
   * returns the clear fragment. `init` is the init segment when the session was not created
   * from one. Refused with the policy's coded error when a key it needs is not usable.
   */
  async decryptFragment(fragment: Uint8Array, init?: Uint8Array): Promise<Buffer> {
    this.ensureOpen();
    if (init) this.setInit(init);
    const kids = await this.neededKids(fragment);
    let resolved = await this.resolveKeys(kids);
    if (resolved.missing.length > 0 && this.opts.autoAcquire !== false) {
      await this.acquire(resolved.missing);
      resolved = await this.resolveKeys(kids);
    }
    if (resolved.outputPending.size > 0 && this.host.settleOutputs) {
      // Protection is engaged before the first key is used (HDCP takes a moment to come up).
      for (const id of resolved.outputPending) await this.host.settleOutputs(id);
      resolved = await this.resolveKeys(kids);
    }
    const refused = kids.find((k) => !resolved.keys.has(k));
    if (refused !== undefined) throw resolved.errors.get(refused) ?? this.notUsable(refused);
    for (const licenseId of resolved.licenses) {
      if (this.played.has(licenseId)) continue;
      await this.host.licenses.recordPlay(licenseId);
      this.played.add(licenseId);
    }
    const keys: ContentKey[] = [...resolved.keys].map(([kid, key]) => ({
      kid: Buffer.from(kid, 'hex'),
      key,
    }));
    try {
      const opts = {
        keys,
        requireAllKeys: false, // a live segment may use only rotated keys (checked per sample)
        ...(this.opts.cipherFactory && { cipherFactory: this.opts.cipherFactory }),
      };
      // A whole file (ftyp/moov first) carries its own header: no init segment in front.
      const init = hasMovieHeader(fragment) ? undefined : this.init;
      const { output } = await decryptBytes(fragment, opts, init);
      if (!init) return output;
      return output.subarray(await this.initLength(opts));
    } catch (err) {
      if (isKeywardenError(err, 'MEDIA_MISSING_KEY')) {
        const kid = String((err.details.kids as string[] | undefined)?.[0] ?? '');
        throw this.notUsable(kid.replaceAll('-', ''), err);
      }
      throw err;
    }
  }

  /** The clear init segment (sample entries restored, protection boxes removed). */
  async clearInit(): Promise<Buffer> {
    if (!this.init) throw kwError('MEDIA_MISSING_BOX', 'the session has no init segment');
    const { output } = await decryptBytes(this.init, {
      keys: [],
      requireAllKeys: false,
      ...(this.opts.cipherFactory && { cipherFactory: this.opts.cipherFactory }),
    });
    return output;
  }

  /** Closes the session; later calls are SESSION_CLOSED. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('closed');
  }

  private setInit(init: Uint8Array): void {
    if (this.init && Buffer.compare(this.init, init) === 0) return;
    this.init = init;
    this.clearInitLength = undefined;
  }

  private async initLength(opts: { keys: ContentKey[] }): Promise<number> {
    if (this.clearInitLength === undefined) {
      const { output } = await decryptBytes(this.init!, { ...opts, keys: opts.keys });
      this.clearInitLength = output.length;
    }
    return this.clearInitLength;
  }

  /**
   * The KIDs a fragment's samples use (seig groups and track defaults). KIDs its pssh
   * announces but no held license covers (the next key period of a live stream) are
   * acquired in the background, so the key is there before the first sample needing it.
   */
  private async neededKids(fragment: Uint8Array): Promise<string[]> {
    const needs = fragmentNeeds(fragment, this.init);
    // A live stream's moof pssh may be the first to name the license server (keyids init data).
    if (
      (needs.licenseUrl && !this.content.licenseUrl) ||
      (needs.contentId && !this.content.contentId)
    )
      this.content = {
        ...this.content,
        licenseUrl: this.content.licenseUrl || needs.licenseUrl,
        contentId: this.content.contentId || needs.contentId,
      };
    for (const embedded of needs.embeddedLicenses) {
      try {
        await this.host.licenses.acceptEmbedded(embedded);
      } catch (err) {
        // Not fatal: the key may still come from the license server.
        if (isKeywardenError(err)) this.emit('problem', err);
        else throw err;
      }
    }
    const kids = new Set(needs.needed.length > 0 ? needs.needed : this.header.kids);
    for (const kid of kids) if (!this.statuses.has(kid)) this.statuses.set(kid, 'status-pending');
    const ahead = needs.announced.filter((k) => !kids.has(k) && !this.prefetched.has(k));
    if (ahead.length > 0 && this.opts.autoAcquire !== false) {
      for (const k of ahead) this.prefetched.add(k);
      void this.prefetch(ahead);
    }
    return [...kids];
  }

  private async prefetch(kids: readonly string[]): Promise<void> {
    const { missing } = await this.resolveKeys(kids);
    if (missing.length > 0) await this.acquire(missing);
  }

  private async acquire(kids: readonly string[], signal?: AbortSignal): Promise<void> {
    const key = kids.join(',');
    let p = this.acquiring.get(key);
    if (!p) {
      this.emit('acquiring-key', { kids });
      p = this.host
        .acquireFor(this.content, kids, signal)
        .finally(() => this.acquiring.delete(key));
      this.acquiring.set(key, p);
    }
    await p.catch((err: unknown) => {
      if (isKeywardenError(err)) this.emit('problem', err);
    });
  }

  private async resolveKeys(kids: readonly string[]): Promise<{
    keys: Map<string, Uint8Array>;
    errors: Map<string, KeywardenError>;
    licenses: Set<string>;
    missing: string[];
    outputPending: Set<string>;
  }> {
    const keys = new Map<string, Uint8Array>();
    const errors = new Map<string, KeywardenError>();
    const licenses = new Set<string>();
    const missing: string[] = [];
    const outputPending = new Set<string>();
    let changed = false;
    for (const kid of kids) {
      const got = await this.host.licenses.keyFor(kid, this.opts.applicationId);
      if (got.key && got.licenseId) {
        keys.set(kid, got.key);
        licenses.add(got.licenseId);
      } else {
        if (got.error) errors.set(kid, got.error);
        if (
          got.status === 'status-pending' &&
          got.licenseId &&
          got.blockedBy === 'output-protection'
        )
          outputPending.add(got.licenseId);
        else if (got.status === 'status-pending') missing.push(kid);
      }
      if (this.statuses.get(kid) !== got.status) {
        this.statuses.set(kid, got.status);
        changed = true;
      }
    }
    if (changed) this.emit('keystatuseschange', this.keyStatuses());
    return { keys, errors, licenses, missing, outputPending };
  }

  private notUsable(kid: string, cause?: unknown): KeywardenError {
    return kwError(
      'KEY_NOT_USABLE',
      `key ${kid} is ${this.statuses.get(kid) ?? 'unknown'} in this session`,
      { kid, status: this.statuses.get(kid) },
      cause,
    );
  }

  private ensureOpen(): void {
    if (this.closed) throw kwError('SESSION_CLOSED', `session ${this.id} is closed`);
  }
}
