import type { Logger } from '../log.js';
import type { SpecVersion } from '../spi/index.js';
import { retry } from './retry.js';

export interface TermDeps {
  readonly leadership: { readonly leading: boolean; onChange(fn: (leading: boolean) => void): unknown };
  readonly store: { list(): Promise<SpecVersion[]> };
  readonly controller: { apply(version: SpecVersion): void; stop(): Promise<unknown>; status(id: string): unknown };
  /** Started once the specs are loaded, stopped with the term (autoscaling). */
  readonly followers?: readonly { start(): void; stop(): void }[];
  readonly logger: Logger;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** How often an acting leader reads the store again and applies any newer version it missed (default 30 s). */
  readonly resyncMs?: number;
}

/**
 * Leadership terms: on gaining leadership the group specs are loaded, retried with backoff until loaded or the term
 * ends (Swarm reads are slow right after an election), then every group is applied and the followers start; on
 * losing it everything stops at once. Until loaded, `loading()` says why this leader manages nothing yet.
 */
export class Terms {
  private reason: string | undefined;
  private term = 0;
  private resync: NodeJS.Timeout | undefined;

  constructor(private readonly d: TermDeps) {
    d.leadership.onChange((leading) => (leading ? void this.begin() : this.end()));
  }

  /** Why this replica leads but does not act yet; undefined once it acts (or while it does not lead). */
  loading(): string | undefined {
    return this.reason;
  }

  private end(): void {
    this.term++;
    this.reason = undefined;
    clearInterval(this.resync);
    for (const f of this.d.followers ?? []) f.stop();
    void this.d.controller.stop();
    this.d.logger.warn({ event: 'leadership.lost' }, 'not the leader: standing by');
  }

  private async begin(): Promise<void> {
    const term = ++this.term;
    const current = () => term === this.term && this.d.leadership.leading;
    this.d.logger.info({ event: 'leadership.gained' }, 'leading: loading every group spec');
    this.reason = 'loading group specs';
    const versions = await retry(
      () => this.d.store.list(),
      current,
      (attempt, err) => {
        this.reason = `loading group specs failed ${attempt} time(s): ${String(err)}`;
        this.d.logger.warn({ event: 'store.error', attempt, err: String(err) }, 'could not load specs; retrying');
      },
      this.d.backoff,
    );
    if (!versions || !current()) return;
    this.reason = undefined;
    versions.forEach((v) => this.d.controller.apply(v));
    for (const f of this.d.followers ?? []) f.start();
    this.d.logger.info({ event: 'leadership.acting', groups: versions.length }, `acting on ${versions.length} group(s)`);
    // A backstop: a version stored by a call whose answer was lost is applied within this period at the latest.
    this.resync = setInterval(() => {
      if (!current()) return;
      this.d.store.list().then(
        // Only groups already managed: a group being freed must not come back from a read made before its removal.
        (vs) => current() && vs.filter((v) => this.d.controller.status(v.id) !== undefined).forEach((v) => this.d.controller.apply(v)),
        (err: unknown) => this.d.logger.warn({ event: 'store.error', err: String(err) }, 'could not read the specs again'),
      );
    }, this.d.resyncMs ?? 30_000);
  }
}
