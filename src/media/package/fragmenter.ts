import type { SampleRef } from './sample-source.js';

/** Slack for comparing times in seconds computed from different timescales. */
const EPSILON = 1e-7;

/** A track as the fragmenter sees it. */
export interface FragmenterTrack {
  readonly id: number;
  readonly timescale: number;
  /** Fragments start on this track's sync samples (a video track, when there is one). */
  readonly lead: boolean;
}

/** One output fragment: per track, the samples it holds (tracks without samples are absent). */
export interface FragmentCut {
  readonly index: number;
  readonly tracks: ReadonlyMap<number, readonly SampleRef[]>;
}

/**
 * Cuts the input's samples into output fragments of about `fragmentMs`, streaming:
 * - boundaries fall at multiples of fragmentMs from the lead track's first decode time;
 *   a fragment ends at the lead track's first sync sample at or after the next boundary
 *   (video starts every fragment with a sync sample; with long GOPs a fragment covers
 *   several boundaries);
 * - the other tracks are cut at the same time: each fragment holds their samples whose
 *   decode time falls before the cut;
 * - a cut waits until every track has a sample at or after it, or the input ended.
 */
export class Fragmenter {
  private readonly pending = new Map<number, SampleRef[]>();
  private readonly scales = new Map<number, number>();
  private readonly lead: FragmenterTrack | undefined;
  private origin: number | undefined;
  /** The next boundary is origin + k * fragmentMs. */
  private k = 1;
  private emitted = 0;

  constructor(
    tracks: readonly FragmenterTrack[],
    private readonly fragmentMs: number,
  ) {
    for (const t of tracks) {
      this.pending.set(t.id, []);
      this.scales.set(t.id, t.timescale);
    }
    this.lead = tracks.find((t) => t.lead) ?? tracks[0];
  }

  /** Adds a batch of samples; returns the fragments that are now complete. */
  push(samples: readonly SampleRef[]): FragmentCut[] {
    for (const s of samples) this.pending.get(s.trackId)?.push(s);
    return this.drain(false);
  }

  /** The input ended: returns the remaining fragments. */
  finish(): FragmentCut[] {
    return this.drain(true);
  }

  private seconds(s: SampleRef): number {
    return s.dts / (this.scales.get(s.trackId) ?? 1);
  }

  private drain(ended: boolean): FragmentCut[] {
    const out: FragmentCut[] = [];
    for (;;) {
      const cut = this.nextCut(ended);
      if (cut === undefined) break;
      const fragment = this.take(cut);
      if (fragment) out.push(fragment);
      if (cut === Infinity) break;
    }
    return out;
  }

  /** The time (seconds) where the next fragment ends, Infinity for "everything", undefined to wait. */
  private nextCut(ended: boolean): number | undefined {
    const leadQueue = this.lead ? (this.pending.get(this.lead.id) ?? []) : [];
    const first = leadQueue[0];
    if (first === undefined) return ended ? this.timeCut() : undefined;
    this.origin ??= this.seconds(first);
    const boundary = this.nextBoundary();
    const at = leadQueue.findIndex((s, i) => i > 0 && s.sync && this.seconds(s) >= boundary);
    if (at < 0) return ended ? this.cutAfterLead(leadQueue) : undefined;
    const cut = this.seconds(leadQueue[at]!);
    if (!ended && !this.othersReach(cut)) return undefined;
    return cut;
  }

  /** The next boundary, in seconds, with a little slack for rounding (boundaries at origin + k * fragmentMs). */
  private nextBoundary(): number {
    return (this.origin ?? 0) + (this.k * this.fragmentMs) / 1000 - EPSILON;
  }

  /** Moves k past a cut: the first boundary strictly after it. */
  private advance(cut: number): void {
    const d = this.fragmentMs / 1000;
    const passed = Math.floor((cut - (this.origin ?? 0)) / d + EPSILON);
    this.k = Math.max(this.k + 1, passed + 1);
  }

  /** After the lead track ran out: cut the rest at plain boundaries. */
  private timeCut(): number | undefined {
    const firsts = [...this.pending.values()].flatMap((q) => (q[0] ? [this.seconds(q[0])] : []));
    if (firsts.length === 0) return undefined;
    this.origin ??= Math.min(...firsts);
    return this.boundaryOrEnd();
  }

  /**
   * The input ended and the lead track has no sync sample left to cut at: its remaining
   * samples all go into this fragment, which ends at the first boundary after them.
   */
  private cutAfterLead(queue: readonly SampleRef[]): number {
    const last = this.seconds(queue[queue.length - 1]!);
    while (this.nextBoundary() <= last) this.k++;
    return this.boundaryOrEnd();
  }

  /** The next boundary if any pending sample lies at or after it, else Infinity (take all). */
  private boundaryOrEnd(): number {
    const boundary = this.nextBoundary();
    for (const q of this.pending.values()) {
      const last = q[q.length - 1];
      if (last && this.seconds(last) >= boundary) return boundary;
    }
    return Infinity;
  }

  private othersReach(cut: number): boolean {
    for (const [id, queue] of this.pending) {
      if (id === this.lead?.id) continue;
      const last = queue[queue.length - 1];
      if (last === undefined || this.seconds(last) < cut) return false;
    }
    return true;
  }

  /** Takes the samples before `cut`; undefined when there are none (a gap in the input). */
  private take(cut: number): FragmentCut | undefined {
    const tracks = new Map<number, SampleRef[]>();
    for (const [id, queue] of this.pending) {
      let n = 0;
      while (n < queue.length && this.seconds(queue[n]!) < cut - EPSILON) n++;
      if (n > 0) tracks.set(id, queue.splice(0, n));
    }
    if (cut !== Infinity) this.advance(cut);
    if (tracks.size === 0) return undefined;
    return { index: this.emitted++, tracks };
  }
}
