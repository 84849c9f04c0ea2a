import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { FakeBackend, fail, loadStatus, progress } from '$lib/backend/fake';
import type { LoadSetting } from '$lib/bindings/LoadSetting';
import { SyncState } from '$lib/state/sync.svelte';
import LoadControl from './LoadControl.svelte';

const fixed = (level: string | number): LoadSetting => ({ level, maxSourceLatencyIncreasePercent: null, maxSecondaryLagSeconds: null });

async function renderControl(load = loadStatus(fixed('full'))) {
  const backend = new FakeBackend();
  backend.current = progress({ load });
  const sync = new SyncState(backend);
  await sync.attach();
  render(LoadControl, { control: sync.load });
  return { backend, sync };
}

const byTestId = (id: string) => screen.getByTestId(id);

describe('LoadControl', () => {
  it('shows the level, the readers and the cap it runs at', async () => {
    await renderControl();
    expect(byTestId('load-level').textContent).toBe('full');
    expect(byTestId('load-cap').textContent).toBe('4 readers · no cap');
    expect(byTestId('load-level-full').getAttribute('aria-pressed')).toBe('true');
    expect(screen.queryByTestId('load-throttling')).toBeNull();
    expect(screen.queryByTestId('load-apply')).toBeNull();
  });

  it('sends gentle when it is pressed and shows it', async () => {
    const { backend } = await renderControl();
    await fireEvent.click(byTestId('load-level-gentle'));
    await waitFor(() => expect(byTestId('load-level').textContent).toBe('gentle'));
    expect(backend.called('setLoad')).toEqual([[fixed('gentle')]]);
    expect(byTestId('load-cap').textContent).toBe('1 reader · 5 MiB/s');
    expect(byTestId('load-level-gentle').getAttribute('aria-pressed')).toBe('true');
  });

  it('sends a custom rate and the adaptive limits on Apply', async () => {
    const { backend } = await renderControl();
    await fireEvent.click(byTestId('load-level-custom'));
    await fireEvent.input(byTestId('load-custom-mib'), { target: { value: '12.5' } });
    await fireEvent.click(byTestId('load-adaptive'));
    await fireEvent.input(byTestId('load-latency'), { target: { value: '20' } });
    await fireEvent.input(byTestId('load-lag'), { target: { value: '10' } });
    expect(backend.called('setLoad')).toHaveLength(0);
    await fireEvent.click(byTestId('load-apply'));
    await waitFor(() => expect(byTestId('load-level').textContent).toBe('12.5 MiB/s'));
    expect(backend.called('setLoad')).toEqual([[{ level: 12.5, maxSourceLatencyIncreasePercent: 20, maxSecondaryLagSeconds: 10 }]]);
    expect(byTestId('load-throttling').textContent).toContain('reads within +20% of idle, secondaries within 10 s');
    expect(screen.queryByTestId('load-apply')).toBeNull();
  });

  it("shows the engine's refusal inline in its sentence", async () => {
    const { backend } = await renderControl();
    backend.loadAnswer = async () => {
      throw fail('invalid_state', 'Cannot change the load level while the migration is COMMITTED.', 'Start a new migration.');
    };
    await fireEvent.click(byTestId('load-level-normal'));
    const error = await screen.findByTestId('load-error');
    expect(error.getAttribute('role')).toBe('alert');
    expect(error.textContent).toContain('Cannot change the load level while the migration is COMMITTED.');
    expect(error.textContent).not.toContain('invalid_state');
    expect(byTestId('load-level').textContent).toBe('full');
  });

  it('says when and why the adaptive mode throttles', async () => {
    const { backend } = await renderControl(
      loadStatus({ level: 'full', maxSourceLatencyIncreasePercent: 50, maxSecondaryLagSeconds: null }),
    );
    expect(byTestId('load-throttling').textContent).toContain('not throttling');
    expect((byTestId('load-adaptive') as HTMLInputElement).checked).toBe(true);
    backend.emit({
      kind: 'progress',
      ...progress({
        load: loadStatus(
          { level: 'full', maxSourceLatencyIncreasePercent: 50, maxSecondaryLagSeconds: null },
          { throttling: true, readers: 2, bytesPerSecond: 8 * 1024 * 1024, reason: "The source's reads are 80% slower than idle, over the 50% limit." },
        ),
      }),
    });
    await waitFor(() => expect(byTestId('load-throttling').textContent).toContain('Throttling:'));
    expect(byTestId('load-throttling').textContent).toContain('80% slower than idle');
    expect(byTestId('load-cap').textContent).toBe('2 readers · 8 MiB/s');
  });
});
