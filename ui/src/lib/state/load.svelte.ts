// The load on the source, as the user chooses it: `LoadForm` is what the
// user has picked and typed (at the start of a sync, and in the live
// control), `LoadControl` changes the running migration's level through
// the backend and follows the level the engine reports.
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { LoadSetting } from '$lib/bindings/LoadSetting';
import type { LoadStatus } from '$lib/bindings/LoadStatus';
import { buildSetting, defaultDraft, draftOf, sameSetting, settingOf, type Built, type LevelKind, type LoadDraft } from './load';

export class LoadForm {
  draft: LoadDraft = $state(defaultDraft());

  /** The setting the draft asks for, or what keeps it from being one. */
  get built(): Built {
    return buildSetting(this.draft);
  }

  /** Why the draft is not a setting yet, in a sentence; null when it is. */
  get problem(): string | null {
    const built = this.built;
    return built.ok ? null : built.problem;
  }

  /**
   * What a start asks for: null while the draft is the default (full, not
   * adaptive), which keeps today's behaviour: a new migration runs at full
   * and a resumed one at the level it was left at.
   */
  get startSetting(): LoadSetting | null {
    const built = this.built;
    if (!built.ok) return null;
    const fullOnly: LoadSetting = { level: 'full', maxSourceLatencyIncreasePercent: null, maxSecondaryLagSeconds: null };
    return sameSetting(built.setting, fullOnly) ? null : built.setting;
  }

  show(setting: LoadSetting): void {
    this.draft = draftOf(setting);
  }
}

export class LoadControl {
  readonly form = new LoadForm();
  busy = $state(false);
  /** The last refusal of a change, shown beside the control. */
  error: ErrorInfo | null = $state(null);
  /** The running setting the form last showed. */
  private shown: LoadSetting | null = null;

  /**
   * `current` reads the status the migration reports (pushed with its
   * progress); `answered` hands the status a change returns to whoever
   * shows it, so that it appears before the next progress snapshot.
   */
  constructor(
    private readonly backend: Backend,
    private readonly current: () => LoadStatus | null,
    private readonly answered: (status: LoadStatus) => void,
  ) {}

  get status(): LoadStatus | null {
    return this.current();
  }

  /** The draft asks for something other than what the migration runs at. */
  get dirty(): boolean {
    const status = this.current();
    const built = this.form.built;
    if (!status) return false;
    return !built.ok || !sameSetting(built.setting, settingOf(status));
  }

  /**
   * Shows the running setting in the form when it changes, unless the
   * user is in the middle of changing it.
   */
  follow(): void {
    const status = this.current();
    if (!status) return;
    const running = settingOf(status);
    if (this.shown && sameSetting(this.shown, running)) return;
    const editing = this.shown !== null && this.dirtyAgainst(this.shown);
    this.shown = running;
    if (!editing) this.form.show(running);
  }

  private dirtyAgainst(setting: LoadSetting): boolean {
    const built = this.form.built;
    return !built.ok || !sameSetting(built.setting, setting);
  }

  /** Picks a level: a named one applies at once, custom waits for a rate. */
  choose(kind: LevelKind): Promise<boolean> {
    this.form.draft.kind = kind;
    this.error = null;
    if (kind === 'custom') return Promise.resolve(false);
    return this.apply();
  }

  /** Turns the adaptive mode on (its limits wait for Apply) or off (at once). */
  setAdaptive(on: boolean): Promise<boolean> {
    this.form.draft.adaptive = on;
    this.error = null;
    if (on) return Promise.resolve(false);
    return this.apply();
  }

  /** Sends the draft to the running migration. */
  async apply(): Promise<boolean> {
    const built = this.form.built;
    if (!built.ok) {
      this.error = { code: 'invalid_input', message: built.problem, remedy: '' };
      return false;
    }
    this.busy = true;
    this.error = null;
    try {
      const status = await this.backend.setLoad(built.setting);
      this.shown = settingOf(status);
      this.form.show(this.shown);
      this.answered(status);
      return true;
    } catch (error) {
      this.error = toErrorInfo(error);
      return false;
    } finally {
      this.busy = false;
    }
  }

  /** Back to what the migration runs at. */
  revert(): void {
    const status = this.current();
    this.error = null;
    if (status) this.form.show(settingOf(status));
  }
}
