// The running migration as the UI sees it: the latest progress snapshot
// (pushed by the backend's channel, never polled), a per-second history
// of lag and events/s for the charts, which way it runs and whether it
// keeps a way back (both as the engine reports them), and the control
// actions, the load on the source and the reverse among them.
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { CommitRequest } from '$lib/bindings/CommitRequest';
import type { DirectionMapping } from '$lib/bindings/DirectionMapping';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { Event } from '$lib/bindings/Event';
import type { EventSource } from '$lib/bindings/EventSource';
import type { EventSourceChoice } from '$lib/bindings/EventSourceChoice';
import type { LoadStatus } from '$lib/bindings/LoadStatus';
import type { Progress } from '$lib/bindings/Progress';
import type { ResumableMigration } from '$lib/bindings/ResumableMigration';
import type { StartSyncRequest } from '$lib/bindings/StartSyncRequest';
import { mappedDirection, turned } from './direction';
import { LoadControl, LoadForm } from './load.svelte';
import { MigrationLogState } from './log.svelte';

export interface Sample {
  /** Milliseconds since the epoch. */
  t: number;
  lag: number | null;
  eventsPerSecond: number;
}

/** Five minutes of one-second samples. */
export const HISTORY_LIMIT = 300;

export interface EventSourceOption {
  value: EventSourceChoice;
  label: string;
  detail: string;
}

/** The event sources a sync may read, as the Sync step offers them. */
export const EVENT_SOURCES: readonly EventSourceOption[] = [
  {
    value: 'auto',
    label: 'Automatic (recommended)',
    detail: 'The oplog for MongoDB 4.4 and 5.0 sources, change streams from 6.0.',
  },
  { value: 'change-stream', label: 'Change streams', detail: 'MongoDB 6.0 or newer.' },
  {
    value: 'oplog',
    label: 'Oplog',
    detail: 'Replica sets from MongoDB 4.4; needs read access to the local database.',
  },
];

/** Where a running sync reads the source's changes from, in words. */
export const EVENT_SOURCE_TEXT: Record<EventSource, string> = {
  changeStream: 'a change stream',
  oplog: "the source's oplog",
};

export class SyncState {
  progress: Progress | null = $state(null);
  history: Sample[] = $state([]);
  /** The last failure: of a call, or the migration's own. */
  error: ErrorInfo | null = $state(null);
  busy = $state(false);
  startedAt: number | null = $state(null);
  finishedAt: number | null = $state(null);
  /**
   * Where the sync will read the source's changes from: sent with the
   * compatibility check and the start. A resumed migration uses `auto`.
   */
  eventSource: EventSourceChoice = $state('auto');
  /**
   * Keep a way back, as chosen before the start: sent with the
   * compatibility check and the start. Once started, `reversible` says
   * whether the migration keeps one.
   */
  keepWayBack = $state(false);
  /**
   * Reopened after a restart already committed: this window saw none of
   * its copy and sync, so the Done step has no figures of them to show.
   */
  reopenedCommitted = $state(false);
  /** The direction a reverse being prepared turns from, as the engine reported it then. */
  private turningFrom: DirectionMapping | null = $state(null);
  /** The load the sync starts at, as chosen before it starts. */
  readonly startLoad = new LoadForm();
  /** The live load control of the running sync. */
  readonly load: LoadControl;
  /** The migration's log file, and the action that opens it. */
  readonly log: MigrationLogState;

  constructor(
    private readonly backend: Backend,
    private readonly now: () => number = Date.now,
  ) {
    this.load = new LoadControl(
      backend,
      () => this.progress?.load ?? null,
      (status) => this.onLoadStatus(status),
    );
    this.log = new MigrationLogState(backend);
  }

  get state(): Progress['state'] | 'NOT_STARTED' {
    return this.progress?.state ?? 'NOT_STARTED';
  }

  /** The copy is finished: the migration is applying events or beyond. */
  get copyDone(): boolean {
    const p = this.progress;
    if (!p) return false;
    return p.phase === 'applying' || p.phase === 'committing' || p.phase === 'done';
  }

  get committed(): boolean {
    return this.progress?.state === 'COMMITTED';
  }

  /**
   * Whether the migration keeps a way back, as the engine says once its
   * run has read the stored migration (a resumed one keeps its stored
   * choice, whatever was asked).
   */
  get reversible(): boolean {
    return this.progress?.reversible ?? false;
  }

  /** A committed migration that keeps a way back, which may now be reversed. */
  get canReverse(): boolean {
    return this.committed && this.reversible;
  }

  /**
   * Which way the migration runs, as the engine reports it; while a
   * reverse is being prepared (REVERSING), the way it turns to, which the
   * engine reports only once the reverse has begun. `null` before the
   * engine says.
   */
  get mapping(): DirectionMapping | null {
    const p = this.progress;
    const live = p?.directionMapping ?? null;
    if (!live || p?.state !== 'REVERSING') return live;
    const from = this.turningFrom ?? live;
    return live.Source === from.Source ? turned(live) : live;
  }

  /** The live direction runs back, from the cluster the wizard migrated to (a reverse). */
  get reversed(): boolean {
    const mapping = this.mapping;
    return mapping !== null && mappedDirection(mapping).reverse;
  }

  /** Events applied in the live direction: the engine counts each direction from its start. */
  get eventsApplied(): number {
    return this.progress?.totalEventsApplied ?? 0;
  }

  async start(request: StartSyncRequest): Promise<boolean> {
    return this.act(async () => {
      await this.backend.startSync(request);
      this.startedAt = this.now();
      await this.attach();
    });
  }

  /**
   * Resumes the migration the app remembered from an earlier run: one
   * stopped midway, or one committed with a way back, to be reversed.
   */
  async resumeEarlier(offer: ResumableMigration): Promise<boolean> {
    return this.act(async () => {
      await this.backend.resumeRemembered();
      const committed = offer.phase === 'committed';
      this.reopenedCommitted = committed;
      // A committed one's time was taken before this window opened.
      this.startedAt = committed ? null : offer.startedAt;
      await this.attach();
    });
  }

  /**
   * Turns the committed migration round: the new cluster's writes since
   * the cutover flow back to the old one. The dashboard starts afresh for
   * the reverse: its own time and charts (the engine counts its events
   * and failures from zero).
   */
  reverse(): Promise<boolean> {
    return this.act(async () => {
      this.turningFrom = this.progress?.directionMapping ?? null;
      const progress = await this.backend.reverseMigration();
      this.reopenedCommitted = false;
      this.history = [];
      this.startedAt = this.now();
      this.finishedAt = null;
      this.apply(progress);
    });
  }

  /** Subscribes to the backend's pushed events. */
  async attach(): Promise<void> {
    const snapshot = await this.backend.watchMigration((event) => this.onEvent(event));
    this.apply(snapshot);
    await this.log.refresh();
  }

  pause(): Promise<boolean> {
    return this.act(async () => this.apply(await this.backend.pauseMigration()));
  }

  resume(): Promise<boolean> {
    return this.act(async () => this.apply(await this.backend.resumeMigration()));
  }

  commit(request: CommitRequest): Promise<boolean> {
    return this.act(async () => this.apply(await this.backend.commitMigration(request)));
  }

  onEvent(event: Event): void {
    switch (event.kind) {
      case 'progress': {
        const { kind: _kind, ...progress } = event;
        this.apply(progress);
        break;
      }
      case 'error': {
        const { kind: _kind, ...info } = event;
        this.error = info;
        break;
      }
      case 'stateChanged':
      case 'warning':
        // The next snapshot carries the new state and the warning list.
        break;
    }
  }

  /** A changed level shows at once, before the next snapshot carries it. */
  private onLoadStatus(status: LoadStatus): void {
    if (this.progress) this.progress = { ...this.progress, load: status };
  }

  private apply(progress: Progress): void {
    // Where a reverse turns from: the direction before it, until it runs.
    if (progress.state !== 'REVERSING') this.turningFrom = null;
    else this.turningFrom ??= progress.directionMapping;
    this.progress = progress;
    this.load.follow();
    if (progress.error) this.error = progress.error;
    // When the live direction committed: a reverse starts it again.
    if (progress.state !== 'COMMITTED') this.finishedAt = null;
    else if (this.finishedAt === null) this.finishedAt = this.now();
    const t = this.now();
    const last = this.history[this.history.length - 1];
    if (!last || t - last.t >= 1000) {
      const next = [...this.history, { t, lag: progress.lagTimeSeconds, eventsPerSecond: progress.eventsPerSecond }];
      this.history = next.length > HISTORY_LIMIT ? next.slice(next.length - HISTORY_LIMIT) : next;
    }
  }

  private async act(f: () => Promise<void>): Promise<boolean> {
    this.busy = true;
    this.error = null;
    try {
      await f();
      return true;
    } catch (error) {
      this.error = toErrorInfo(error);
      return false;
    } finally {
      this.busy = false;
    }
  }
}
