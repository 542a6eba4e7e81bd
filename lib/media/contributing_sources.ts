/**
 * The CSRC lists of a mixer's output (RFC 3550 §7.1: a mixer lists the SSRCs of the sources
 * it mixed in the CSRC list of each packet; §5.1: at most 15). The full mix lists every mixed
 * speaker with a known source id; a speaker's own (minus-self) mix lists the others. Lists
 * are rebuilt only when the speakers change, so a steady conference allocates nothing.
 * @module
 */

import { NO_CSRCS } from "./rtp.ts";

/** RFC 3550 §5.1: the CSRC count is 4 bits. */
export const MAX_CSRCS = 15;

/** A mixed speaker as the lists see it. */
export interface ContributingSpeaker {
  /** The SSRC it sends, once known. */
  readonly sourceId: number | undefined;
  /** Its own list and the full list it was derived from (cache owned by this module). */
  ownCsrcs: readonly number[];
  ownCsrcsFrom: readonly number[] | undefined;
}

/** The full mix's CSRC list of the current tick. */
export class ContributingSources {
  #csrcs: readonly number[] = NO_CSRCS;

  /** The full mix's list (reused while unchanged: read it, do not keep or change it). */
  get all(): readonly number[] {
    return this.#csrcs;
  }

  /**
   * Rebuilds the list when the mixed speakers or their ids changed: `selected` in selection
   * order, `mixed` telling which of them have audio in this tick's mix.
   */
  update<S extends ContributingSpeaker>(selected: Iterable<S>, mixed: (s: S) => boolean): void {
    const current = this.#csrcs;
    let n = 0;
    let same = true;
    for (const s of selected) {
      if (s.sourceId === undefined || !mixed(s)) continue;
      if (n >= MAX_CSRCS) break;
      if (current[n] !== s.sourceId) same = false;
      n++;
    }
    if (same && n === current.length) return;
    const list: number[] = [];
    for (const s of selected) {
      if (s.sourceId === undefined || !mixed(s)) continue;
      if (list.length >= MAX_CSRCS) break;
      list.push(s.sourceId);
    }
    this.#csrcs = list.length === 0 ? NO_CSRCS : list;
  }

  /** The full list minus `speaker`'s own id (cached on the speaker until the list changes). */
  without(speaker: ContributingSpeaker): readonly number[] {
    if (speaker.ownCsrcsFrom !== this.#csrcs) {
      speaker.ownCsrcsFrom = this.#csrcs;
      const own = this.#csrcs.filter((c) => c !== speaker.sourceId);
      speaker.ownCsrcs = own.length === 0 ? NO_CSRCS : own;
    }
    return speaker.ownCsrcs;
  }
}
