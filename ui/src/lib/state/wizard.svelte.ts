// The wizard: which step is showing, whether it may move on, and the
// per-step state it hands down to the step components (via context).
// Start-up checks (a migration to resume, a running sandbox) live here too.
import { getContext, setContext } from 'svelte';
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { InstallOffer } from '$lib/bindings/InstallOffer';
import type { InstallProgress } from '$lib/bindings/InstallProgress';
import type { ProfileSummary } from '$lib/bindings/ProfileSummary';
import type { ResumableMigration } from '$lib/bindings/ResumableMigration';
import type { SandboxInfo } from '$lib/bindings/SandboxInfo';
import { ConnectionState } from './connection.svelte';
import { PreflightState } from './preflight.svelte';
import { ScopeState } from './scope.svelte';
import { SyncState } from './sync.svelte';
import { ValidateState } from './validate.svelte';
import { direction, mappedDirection, type Direction } from './direction';

export type StepId = 'source' | 'destination' | 'compatibility' | 'scope' | 'sync' | 'cutover' | 'validate' | 'done';

export interface Step {
  id: StepId;
  title: string;
}

export const STEPS: readonly Step[] = [
  { id: 'source', title: 'Source' },
  { id: 'destination', title: 'Destination' },
  { id: 'compatibility', title: 'Compatibility' },
  { id: 'scope', title: 'Scope' },
  { id: 'sync', title: 'Sync' },
  { id: 'cutover', title: 'Cutover' },
  { id: 'validate', title: 'Validate' },
  { id: 'done', title: 'Done' },
];

/** The step a resumed migration opens on, by the phase it was found in. */
const RESUMED_AT: Record<string, StepId> = {
  copying: 'sync',
  syncing: 'sync',
  committing: 'cutover',
  committed: 'done',
};

export type SandboxStatus =
  | { kind: 'none' }
  | { kind: 'starting' }
  | { kind: 'running'; info: SandboxInfo }
  | { kind: 'failed'; error: ErrorInfo }
  /** No mongod here: the pinned one can be downloaded (`error` is why the last try failed). */
  | { kind: 'needs-mongod'; offer: InstallOffer; error: ErrorInfo | null }
  | { kind: 'installing'; offer: InstallOffer; progress: InstallProgress | null };

export class Wizard {
  readonly steps = STEPS;
  index = $state(0);
  readonly source: ConnectionState;
  readonly destination: ConnectionState;
  readonly preflight: PreflightState;
  readonly scope: ScopeState;
  readonly sync: SyncState;
  readonly validate: ValidateState;
  resumable: ResumableMigration | null = $state(null);
  sandbox: SandboxStatus = $state({ kind: 'none' });
  /** Saved connection profiles; empty when the keyring cannot be reached. */
  profiles: ProfileSummary[] = $state([]);
  /** Why the saved profiles could not be listed, shown as a note. */
  profilesUnavailable: ErrorInfo | null = $state(null);
  /** The last failure to use or save a profile. */
  profileError: ErrorInfo | null = $state(null);
  /** Cutover checklist: how writes to the source are stopped. */
  writes: 'stopped-by-me' | 'block' | null = $state(null);

  constructor(private readonly backend: Backend) {
    this.source = new ConnectionState(backend, 'source');
    this.destination = new ConnectionState(backend, 'destination');
    this.preflight = new PreflightState(backend);
    this.scope = new ScopeState(backend);
    this.sync = new SyncState(backend);
    this.validate = new ValidateState(backend);
  }

  get step(): Step {
    return this.steps[this.index] ?? STEPS[0]!;
  }

  /** Whether the current step is complete, so Next may be pressed. */
  get canNext(): boolean {
    switch (this.step.id) {
      case 'source':
        return this.source.ready;
      case 'destination':
        return this.destination.ready;
      case 'compatibility':
        return this.preflight.passed;
      case 'scope':
        return this.scope.status.kind === 'ready' && this.scope.selected.size > 0;
      case 'sync':
        // A reverse being prepared still shows its forward's last phase.
        return this.sync.copyDone && this.sync.state !== 'REVERSING';
      case 'cutover':
        return this.sync.committed;
      case 'validate':
        return this.validate.status.kind === 'done';
      case 'done':
        return false;
    }
  }

  /**
   * The clusters the live direction runs between, named by their hosts:
   * as the engine reports them once the migration runs (after a restart
   * too, when the connection steps are empty), else from the wizard's
   * connection strings.
   */
  get direction(): Direction {
    const mapping = this.sync.mapping;
    return mapping ? mappedDirection(mapping) : direction(this.source.effectiveUri, this.destination.effectiveUri);
  }

  /** Whether the direction names clusters: the engine reported them, or the wizard has a connection string. */
  get directionKnown(): boolean {
    return this.sync.mapping !== null || this.source.effectiveUri !== '';
  }

  /** Steps before the sync can be revisited until the migration starts. */
  get canBack(): boolean {
    return this.index > 0 && this.sync.progress === null;
  }

  next(): void {
    if (!this.canNext) return;
    this.go(this.index + 1);
  }

  back(): void {
    if (this.canBack) this.go(this.index - 1);
  }

  goTo(id: StepId): void {
    const i = this.steps.findIndex((s) => s.id === id);
    if (i >= 0) this.go(i);
  }

  private go(i: number): void {
    this.index = Math.max(0, Math.min(this.steps.length - 1, i));
    if (this.step.id === 'compatibility') void this.checkCompatibility();
    if (this.step.id === 'scope') void this.loadScope();
  }

  /** The source's databases and collections, for the scope step. */
  loadScope(): Promise<void> {
    return this.scope.load(this.source.effectiveUri, this.source.profileName);
  }

  /**
   * The preflight check of both clusters, for everything on the source and
   * the event source and way back chosen on the Sync step (so going back
   * to it after a change checks again).
   */
  checkCompatibility(force = false): Promise<void> {
    return this.preflight.run(
      {
        sourceUri: this.source.effectiveUri,
        destinationUri: this.destination.effectiveUri,
        include: [],
        exclude: [],
        eventSource: this.sync.eventSource,
        sourceProfile: this.source.profileName,
        destinationProfile: this.destination.profileName,
        reversible: this.sync.keepWayBack,
      },
      force,
    );
  }

  async loadProfiles(): Promise<void> {
    try {
      this.profiles = await this.backend.listProfiles();
    } catch (error) {
      // No keyring (a headless session) must not stop the wizard: the
      // profile list stays empty and saving reports why.
      this.profiles = [];
      this.profilesUnavailable = toErrorInfo(error);
    }
  }

  /**
   * Fills one side's connection string from a saved profile: its redacted
   * form. The secrets stay in the OS keyring; the shell puts them back
   * when a request names the profile and the string is unchanged.
   */
  useProfile(side: 'source' | 'destination', name: string): void {
    const conn = side === 'source' ? this.source : this.destination;
    this.profileError = null;
    const profile = this.profiles.find((p) => p.name === name);
    if (!profile) {
      this.profileError = {
        code: 'profile_not_found',
        message: `No connection profile is named '${name}'.`,
        remedy: 'Pick one from the list.',
      };
      return;
    }
    conn.setFromProfile(profile.name, profile.displayUri);
  }

  /** Saves one side's connection string as a profile. */
  async saveProfile(side: 'source' | 'destination', name: string): Promise<boolean> {
    const conn = side === 'source' ? this.source : this.destination;
    this.profileError = null;
    try {
      await this.backend.saveProfile({
        name: name.trim(),
        uri: conn.effectiveUri,
        replace: false,
        profile: conn.profileName,
      });
      await this.loadProfiles();
      return true;
    } catch (error) {
      this.profileError = toErrorInfo(error);
      return false;
    }
  }

  /** Asks whether an unfinished migration waits on the remembered destination. */
  async checkResumable(): Promise<void> {
    try {
      this.resumable = await this.backend.findResumable();
    } catch {
      this.resumable = null;
    }
  }

  /**
   * Resumes the offered migration on the step it stopped at: the Sync
   * step's dashboard (a reverse's too), the Cutover step mid-commit, or
   * the Done step, Reverse offered, when it was committed with a way back.
   */
  async resumeEarlier(): Promise<void> {
    const offer = this.resumable;
    if (!offer) return;
    if (await this.sync.resumeEarlier(offer)) {
      this.resumable = null;
      this.goTo(RESUMED_AT[offer.phase] ?? 'sync');
    }
  }

  async declineResume(): Promise<void> {
    this.resumable = null;
    try {
      await this.backend.forgetRemembered();
    } catch {
      // Forgetting is a courtesy; the offer is gone from the screen either way.
    }
  }

  /** Starts (or finds) the local sandbox and fills both connection strings. */
  async startSandbox(): Promise<void> {
    this.sandbox = { kind: 'starting' };
    try {
      const info = await this.backend.startSandbox();
      this.sandbox = { kind: 'running', info };
      this.source.setUri(info.sourceUri);
      this.destination.setUri(info.destinationUri);
      await Promise.all([this.source.test(), this.destination.test()]);
    } catch (error) {
      const info = toErrorInfo(error);
      const offer = info.code === 'mongod_missing' ? await this.mongodOffer() : null;
      this.sandbox = offer ? { kind: 'needs-mongod', offer, error: null } : { kind: 'failed', error: info };
    }
  }

  /** What can be downloaded when no mongod is here; null if asking fails. */
  private async mongodOffer(): Promise<InstallOffer | null> {
    try {
      return await this.backend.mongodOffer();
    } catch {
      return null;
    }
  }

  /** Downloads the pinned mongod the sandbox needs, then starts the sandbox. */
  async installMongod(): Promise<void> {
    if (this.sandbox.kind !== 'needs-mongod') return;
    const offer = this.sandbox.offer;
    this.sandbox = { kind: 'installing', offer, progress: null };
    try {
      await this.backend.installMongod((progress) => {
        if (this.sandbox.kind === 'installing') this.sandbox = { kind: 'installing', offer, progress };
      });
    } catch (error) {
      this.sandbox = { kind: 'needs-mongod', offer, error: toErrorInfo(error) };
      return;
    }
    await this.startSandbox();
  }

  async stopSandboxLoad(): Promise<void> {
    try {
      const info = await this.backend.stopSandboxLoad();
      this.sandbox = { kind: 'running', info };
    } catch (error) {
      this.sandbox = { kind: 'failed', error: toErrorInfo(error) };
    }
  }

  async startSync(): Promise<void> {
    // The Start button waits for a load setting it can send.
    if (this.sync.startLoad.problem !== null) return;
    const { include, exclude } = this.scope.patterns;
    await this.sync.start({
      sourceUri: this.source.effectiveUri,
      destinationUri: this.destination.effectiveUri,
      include,
      exclude,
      dropExisting: false,
      eventSource: this.sync.eventSource,
      sourceProfile: this.source.profileName,
      destinationProfile: this.destination.profileName,
      load: this.sync.startLoad.startSetting,
      reversible: this.sync.keepWayBack,
    });
  }

  /**
   * Whether the Cutover step may commit as far as the source's writes go:
   * the user said how they stop, or the migration keeps a way back, whose
   * commit blocks them whatever is asked.
   */
  get writesHandled(): boolean {
    return this.writes !== null || this.sync.reversible;
  }

  async commit(): Promise<void> {
    // `auto`: the engine verifies every document of small migrations at
    // commit, and runs the quick checks on large ones.
    await this.sync.commit({ blockSourceWrites: this.writes === 'block' || this.sync.reversible, verify: 'auto' });
  }

  /**
   * Reverses the committed migration and goes back to the Sync step's
   * dashboard, now for the way back; its cutover and validation are the
   * forward's, done again.
   */
  async reverse(): Promise<void> {
    if (!(await this.sync.reverse())) return;
    this.writes = null;
    this.validate.reset();
    this.goTo('sync');
  }
}

const KEY = Symbol('mongoferry-wizard');

export function provideWizard(wizard: Wizard): void {
  setContext(KEY, wizard);
}

export function useWizard(): Wizard {
  const wizard = getContext<Wizard | undefined>(KEY);
  if (!wizard) throw new Error('no Wizard in context: render inside WizardView');
  return wizard;
}
