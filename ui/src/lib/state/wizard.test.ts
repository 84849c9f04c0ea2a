import { describe, expect, it } from 'vitest';
import { FakeBackend } from '$lib/backend/fake';
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
    w.sync.reversible = true;
    await w.checkCompatibility();
    expect(backend.called('preflightCheck')).toHaveLength(2);
    expect(lastCheck(backend).reversible).toBe(true);
    await w.startSync();
    expect(lastStart(backend).reversible).toBe(true);
    // The shell's answer decides what the Done step offers.
    expect(w.sync.reversible).toBe(true);
    expect(w.sync.reversed).toBe(false);
  });

  it('takes a resumed migration at its stored choice and direction', async () => {
    const { backend, wizard: w } = wizard();
    backend.start = async () => ({ resumed: true, remembered: true, reversible: true, reversed: true });
    await w.startSync();
    expect(w.sync.reversible).toBe(true);
    expect(w.direction).toEqual({ reverse: true, from: '127.0.0.1:2', to: '127.0.0.1:1' });
  });
});
