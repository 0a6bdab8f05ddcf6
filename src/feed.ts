// What happens to the groups, as it happens: the group service's new versions, each loop's progress, the
// autoscaler's decisions. The producers publish here and know nothing of who listens; the API's event stream
// (src/rpc/events.ts) subscribes. In-process and unbuffered, like the metrics registry: a listener that (re)connects
// reads the state through the API first, then follows from here.
import type { Decision } from './autoscale/state.js';
import type { UpdateProgress } from './spi/index.js';

export type FeedEvent =
  /** The group service stored a new version (a commit, scale, pause, resume, rollback, removal, a failed update). */
  | { readonly type: 'group.version'; readonly group: string; readonly version: number; readonly note?: string; readonly at: string }
  /** A group's loop saw it move: members, their health, the rolling update, convergence. */
  | {
      readonly type: 'group.progress';
      readonly group: string;
      readonly version: number;
      readonly size: number;
      readonly instances: number;
      readonly healthy: number;
      readonly update: UpdateProgress;
      readonly converged: boolean;
      readonly at: string;
    }
  /** The group is no longer managed (freed or destroyed). */
  | { readonly type: 'group.removed'; readonly group: string; readonly at: string }
  /** The autoscaler decided: an action, or a new reason not to act. */
  | { readonly type: 'autoscale.decision'; readonly group: string; readonly decision: Decision; readonly at: string };

export type FeedListener = (event: FeedEvent) => void;

/** Delivers each event at once to every listener; a listener that throws is skipped, never the producer's problem. */
export class Feed {
  readonly #listeners = new Set<FeedListener>();

  publish(event: FeedEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own (a stream that broke is dropped by its owner).
      }
    }
  }

  /** Returns the unsubscribe. */
  subscribe(listener: FeedListener): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  get listeners(): number {
    return this.#listeners.size;
  }
}

/** The process's feed. */
export const feed = new Feed();
