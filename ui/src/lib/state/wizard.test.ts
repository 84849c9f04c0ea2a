import { describe, expect, it } from 'vitest';
import { FakeBackend, mapping, progress } from '$lib/backend/fake';
import type { ResumableMigration } from '$lib/bindings/ResumableMigration';
import type { PreflightRequest } from '$lib/bindings/PreflightRequest';
import type { StartSyncRequest } from '$lib/bindings/StartSyncRequest';
import { Wizard } from './wizard.svelte';

function wizard(): { backend: FakeBackend; wizard: Wizard } {
  const backend = new FakeBackend();
  const w = new Wizard(backend);
  w.source.setUri('mongodb://127.0.0.1:1/?replicaSet=s');
  w.destination.setUri('mongodb://127.0.0.1:2/?replicaSet=d');
  return { backend, wizard: w };
}

function resumable(overrides: Partial<ResumableMigration> = {}): ResumableMigration {
  return {
    migrationId: 'm-9',
    phase: 'syncing',
    reversed: false,
    source: 'profile old',
    destination: 'mongodb://root:****@127.0.0.1:2/?replicaSet=d',
    include: [],
    exclude: [],
    startedAt: 0,
    ...overrides,
  };
}

const lastCheck = (b: FakeBackend) => b.called('preflightCheck').at(-1)?.[0] as PreflightRequest;
const lastStart = (b: FakeBackend) => b.called('startSync').at(-1)?.[0] as StartSyncRequest;

describe('Wizard: event source', () => {
  it('asks for auto unless told otherwise', async () => {
    const { backend, wizard: w } = wizard();
    expect(w.sync.eventSource).toBe('auto');
    await w.checkCompatibility();
    await w.startSync();
    expect(lastCheck(backend).eventSource).toBe('auto');
    expect(lastStart(backend).eventSource).toBe('auto');
  });

  it('sends the choice with the check and the start, and checks again when it changes', async () => {
    const { backend, wizard: w } = wizard();
    await w.checkCompatibility();
    expect(w.preflight.checkedEventSource).toBe('auto');
    w.sync.eventSource = 'change-stream';
    await w.checkCompatibility();
    expect(backend.called('preflightCheck')).toHaveLength(2);
    expect(lastCheck(backend).eventSource).toBe('change-stream');
    expect(w.preflight.checkedEventSource).toBe('change-stream');
    // The same choice again: the report stands.
    await w.checkCompatibility();
    expect(backend.called('preflightCheck')).toHaveLength(2);
    w.sync.eventSource = 'oplog';
    await w.startSync();
    expect(lastStart(backend).eventSource).toBe('oplog');
  });
});

describe('Wizard: a way back', () => {
  it('sends the choice with the check and the start, and checks again when it changes', async () => {
    const { backend, wizard: w } = wizard();
    await w.checkCompatibility();
    expect(lastCheck(backend).reversible).toBe(false);
    expect(w.preflight.checkedReversible).toBe(false);
    w.sync.keepWayBack = true;
    await w.checkCompatibility();
    expect(backend.called('preflightCheck')).toHaveLength(2);
    expect(lastCheck(backend).reversible).toBe(true);
    await w.startSync();
    expect(lastStart(backend).reversible).toBe(true);
    // The engine says whether it keeps one, once its run has read the stored migration.
    expect(w.sync.reversible).toBe(false);
    backend.emit({ kind: 'progress', ...progress({ reversible: true, directionMapping: backend.current.directionMapping }) });
    expect(w.sync.reversible).toBe(true);
    expect(w.sync.reversed).toBe(false);
    expect(w.direction).toEqual({ reverse: false, from: '127.0.0.1:1', to: '127.0.0.1:2' });
  });

  it("takes a started migration's way back and direction from the engine, whatever was asked", async () => {
    const { backend, wizard: w } = wizard();
    // The destination holds a reversed migration: the engine runs it back.
    backend.current = progress({ reversible: true, directionMapping: mapping('127.0.0.1:1', '127.0.0.1:2', true) });
    backend.start = async () => ({ resumed: true, remembered: true });
    await w.startSync();
    expect(w.sync.reversible).toBe(true);
    expect(w.sync.reversed).toBe(true);
    expect(w.direction).toEqual({ reverse: true, from: '127.0.0.1:2', to: '127.0.0.1:1' });
  });

  it('names the clusters by the hosts the engine reports, with no connection string on screen', async () => {
    const backend = new FakeBackend();
    const w = new Wizard(backend);
    expect(w.directionKnown).toBe(false);
    backend.current = progress({ directionMapping: mapping('db1:27017,db2:27017', 'new:27017') });
    await w.sync.attach();
    expect(w.directionKnown).toBe(true);
    expect(w.direction).toEqual({ reverse: false, from: 'db1:27017,db2:27017', to: 'new:27017' });
  });

  it('shows the way a reverse turns to while REVERSING, before and after the engine turns its mapping', async () => {
    const { backend, wizard: w } = wizard();
    const forward = mapping('127.0.0.1:1', '127.0.0.1:2');
    backend.current = progress({ state: 'COMMITTED', phase: 'done', reversible: true, directionMapping: forward });
    await w.sync.attach();
    expect(w.sync.reversed).toBe(false);
    await w.sync.reverse();
    expect(w.sync.state).toBe('REVERSING');
    // The engine still reports the direction it turns from.
    expect(w.sync.progress?.directionMapping).toEqual(forward);
    expect(w.direction).toEqual({ reverse: true, from: '127.0.0.1:2', to: '127.0.0.1:1' });
    // It has begun the reverse, still REVERSING: turned once, not twice.
    const back = mapping('127.0.0.1:1', '127.0.0.1:2', true);
    backend.emit({ kind: 'progress', ...progress({ state: 'REVERSING', reversible: true, directionMapping: back }) });
    expect(w.direction).toEqual({ reverse: true, from: '127.0.0.1:2', to: '127.0.0.1:1' });
    backend.emit({ kind: 'progress', ...progress({ phase: 'applying', reversible: true, directionMapping: back, totalEventsApplied: 7 }) });
    expect(w.direction.reverse).toBe(true);
    // The engine counts the reverse's events from zero: shown as it says.
    expect(w.sync.eventsApplied).toBe(7);
  });

  it('reopens a committed migration with a way back on the Done step', async () => {
    const { backend, wizard: w } = wizard();
    backend.resumable = resumable({ phase: 'committed' });
    backend.current = progress({
      state: 'COMMITTED',
      phase: 'done',
      reversible: true,
      directionMapping: mapping('127.0.0.1:1', '127.0.0.1:2'),
    });
    await w.checkResumable();
    await w.resumeEarlier();
    expect(w.step.id).toBe('done');
    expect(w.sync.canReverse).toBe(true);
    expect(w.sync.reopenedCommitted).toBe(true);
    // Its time was taken before this window opened.
    expect(w.sync.startedAt).toBeNull();
  });

  it('resumes a reverse on the Sync step, and one mid-commit on Cutover', async () => {
    const { backend, wizard: w } = wizard();
    backend.resumable = resumable({ phase: 'syncing', reversed: true, startedAt: 1234 });
    backend.current = progress({ phase: 'applying', reversible: true, directionMapping: mapping('127.0.0.1:1', '127.0.0.1:2', true) });
    await w.checkResumable();
    await w.resumeEarlier();
    expect(w.step.id).toBe('sync');
    expect(w.sync.reversed).toBe(true);
    expect(w.sync.startedAt).toBe(1234);
    expect(w.sync.reopenedCommitted).toBe(false);

    const other = wizard();
    other.backend.resumable = resumable({ phase: 'committing', reversed: true });
    await other.wizard.checkResumable();
    await other.wizard.resumeEarlier();
    expect(other.wizard.step.id).toBe('cutover');
  });
});
