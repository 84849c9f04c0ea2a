// The one door from the UI to the Rust shell. Components and state classes
// use the `Backend` interface only, obtained from Svelte context with
// `useBackend()`; `tauri.ts` implements it over IPC, `fake.ts` for tests.
// No other module imports @tauri-apps/api.
import { getContext, setContext } from 'svelte';
import type { AppInfo } from '$lib/bindings/AppInfo';
import type { CommitRequest } from '$lib/bindings/CommitRequest';
import type { DocumentPair } from '$lib/bindings/DocumentPair';
import type { DocumentRequest } from '$lib/bindings/DocumentRequest';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { Event } from '$lib/bindings/Event';
import type { InstallOffer } from '$lib/bindings/InstallOffer';
import type { InstallProgress } from '$lib/bindings/InstallProgress';
import type { LoadSetting } from '$lib/bindings/LoadSetting';
import type { LoadStatus } from '$lib/bindings/LoadStatus';
import type { PingReport } from '$lib/bindings/PingReport';
import type { PreflightRequest } from '$lib/bindings/PreflightRequest';
import type { Progress } from '$lib/bindings/Progress';
import type { Report } from '$lib/bindings/Report';
import type { ProfileSummary } from '$lib/bindings/ProfileSummary';
import type { ResumableMigration } from '$lib/bindings/ResumableMigration';
import type { SaveProfileRequest } from '$lib/bindings/SaveProfileRequest';
import type { SandboxInfo } from '$lib/bindings/SandboxInfo';
import type { ScopeRequest } from '$lib/bindings/ScopeRequest';
import type { ScopeTree } from '$lib/bindings/ScopeTree';
import type { StartSyncRequest } from '$lib/bindings/StartSyncRequest';
import type { SyncStarted } from '$lib/bindings/SyncStarted';
import type { TestConnectionRequest } from '$lib/bindings/TestConnectionRequest';
import type { VerificationOutcome } from '$lib/bindings/VerificationOutcome';
import type { VerifyMode } from '$lib/bindings/VerifyMode';
import type { VerifyProgress } from '$lib/bindings/VerifyProgress';

export interface Backend {
  appInfo(): Promise<AppInfo>;
  testConnection(request: TestConnectionRequest): Promise<PingReport>;
  preflightCheck(request: PreflightRequest): Promise<Report>;
  listProfiles(): Promise<ProfileSummary[]>;
  saveProfile(request: SaveProfileRequest): Promise<ProfileSummary>;
  scopeTree(request: ScopeRequest): Promise<ScopeTree>;
  startSync(request: StartSyncRequest): Promise<SyncStarted>;
  /** Streams progress and events to `onEvent`; resolves with the current snapshot. */
  watchMigration(onEvent: (event: Event) => void): Promise<Progress>;
  pauseMigration(): Promise<Progress>;
  resumeMigration(): Promise<Progress>;
  /** Holds the running migration to another load level, live; resolves with what it now holds to. */
  setLoad(setting: LoadSetting): Promise<LoadStatus>;
  commitMigration(request: CommitRequest): Promise<Progress>;
  /** Starts syncing a committed reversible migration back (REVERSING, then RUNNING the other way). */
  reverseMigration(): Promise<Progress>;
  findResumable(): Promise<ResumableMigration | null>;
  resumeRemembered(): Promise<SyncStarted>;
  forgetRemembered(): Promise<void>;
  startSandbox(): Promise<SandboxInfo>;
  stopSandboxLoad(): Promise<SandboxInfo>;
  /** The pinned mongod the app can download for the sandbox; null when one is already here. */
  mongodOffer(): Promise<InstallOffer | null>;
  /** Downloads, checks and unpacks that mongod, streaming progress; resolves with its path. */
  installMongod(onProgress: (progress: InstallProgress) => void): Promise<string>;
  /** Verifies the destination; resolves when done, streaming progress meanwhile. */
  runVerification(mode: VerifyMode, onProgress: (progress: VerifyProgress) => void): Promise<VerificationOutcome>;
  cancelVerification(): Promise<void>;
  documentPair(request: DocumentRequest): Promise<DocumentPair>;
  exportVerification(path: string): Promise<void>;
  /** Where this window's migration's log is; null before one starts, or when it has none. */
  migrationLog(): Promise<string | null>;
  /** Opens the migration's log with the system's viewer for it. */
  openMigrationLog(): Promise<void>;
  /** A native open-file dialog; null when cancelled. */
  pickFile(title: string): Promise<string | null>;
  /** A native save-file dialog; null when cancelled. */
  pickSavePath(title: string, defaultName: string): Promise<string | null>;
}

/** A failed backend call, carrying the engine's code, sentence and remedy. */
export class BackendError extends Error {
  readonly code: string;
  readonly remedy: string;

  constructor(info: ErrorInfo) {
    super(info.message);
    this.name = 'BackendError';
    this.code = info.code;
    this.remedy = info.remedy;
  }

  get info(): ErrorInfo {
    return { code: this.code, message: this.message, remedy: this.remedy };
  }
}

function isErrorInfo(value: unknown): value is ErrorInfo {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.code === 'string' && typeof v.message === 'string' && typeof v.remedy === 'string';
}

/** Turns anything a call threw into an ErrorInfo the UI can show. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof BackendError) return error.info;
  if (isErrorInfo(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: 'ipc_failed',
    message: `The app's back end did not answer: ${message}`,
    remedy: 'Restart Mongoferry; if it recurs, report it with the log.',
  };
}

const KEY = Symbol('mongoferry-backend');

/** The context entry `provideBackend` makes, for rendering a component in a test. */
export function backendContext(backend: Backend): Map<symbol, Backend> {
  return new Map([[KEY, backend]]);
}

export function provideBackend(backend: Backend): void {
  setContext(KEY, backend);
}

export function useBackend(): Backend {
  const backend = getContext<Backend | undefined>(KEY);
  if (!backend) throw new Error('no Backend in context: call provideBackend() in a parent');
  return backend;
}
