// The running migration as the UI sees it: the latest progress snapshot
// (pushed by the backend's channel, never polled), a per-second history
// of lag and events/s for the charts, which way it runs, and the control
// actions, the load on the source and the reverse among them.
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { CommitRequest } from '$lib/bindings/CommitRequest';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { Event } from '$lib/bindings/Event';
import type { EventSource } from '$lib/bindings/EventSource';
import type { EventSourceChoice } from '$lib/bindings/EventSourceChoice';
import type { LoadStatus } from '$lib/bindings/LoadStatus';
import type { Progress } from '$lib/bindings/Progress';
import type { StartSyncRequest } from '$lib/bindings/StartSyncRequest';
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
   * Keep a way back: chosen before the start (sent with the compatibility
   * check and the start); once started, whether the migration keeps one,
   * as the shell answered (a resumed migration keeps its stored choice).
   */
  reversible = $state(false);
  /** The live direction runs back, from the destination the wizard migrated to, to its source. */
  reversed = $state(false);
  /** Events the migration had applied when the live direction began, so its figures count its own. */
  private eventsBefore = $state(0);
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

  /** A committed migration that keeps a way back, which may now be reversed. */
  get canReverse(): boolean {
    return this.committed && this.reversible;
  }

  /** Events applied in the live direction (a reverse counts from its start). */
  get eventsApplied(): number {
    return Math.max(0, (this.progress?.totalEventsApplied ?? 0) - this.eventsBefore);
  }

  async start(request: StartSyncRequest): Promise<boolean> {
    return this.act(async () => {
      const started = await this.backend.startSync(request);
      this.reversible = started.reversible;
      this.reversed = started.reversed;
      this.startedAt = this.now();
      await this.attach();
    });
  }

  /** Resumes the migration the app remembered from an earlier run. */
  async resumeEarlier(startedAt: number): Promise<boolean> {
    return this.act(async () => {
      const started = await this.backend.resumeRemembered();
      this.reversible = started.reversible;
      this.reversed = started.reversed;
      this.startedAt = startedAt;
      await this.attach();
    });
  }

  /**
   * Turns the committed migration round: the new cluster's writes since
   * the cutover flow back to the old one. The dashboard starts afresh for
   * the reverse: its own time, charts and events.
   */
  reverse(): Promise<boolean> {
    return this.act(async () => {
      const before = this.progress?.totalEventsApplied ?? 0;
      const progress = await this.backend.reverseMigration();
      this.reversed = !this.reversed;
      this.eventsBefore = before;
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
