import { describe, expect, it } from 'vitest';
import { FakeBackend, fail, loadStatus, progress } from '$lib/backend/fake';
import type { LoadSetting } from '$lib/bindings/LoadSetting';
import { buildSetting, defaultDraft, draftOf, formatCap, formatLimits, formatMib, levelName, parseNumber } from './load';
import { LoadForm } from './load.svelte';
import { SyncState } from './sync.svelte';

const fixed = (level: string | number): LoadSetting => ({ level, maxSourceLatencyIncreasePercent: null, maxSecondaryLagSeconds: null });

describe('buildSetting', () => {
  it('sends a named level as its name and a custom one as a number', () => {
    expect(buildSetting({ ...defaultDraft(), kind: 'gentle' })).toEqual({ ok: true, setting: fixed('gentle') });
    expect(buildSetting({ ...defaultDraft(), kind: 'custom', customMib: ' 12.5 ' })).toEqual({ ok: true, setting: fixed(12.5) });
    expect(buildSetting({ ...defaultDraft(), kind: 'custom', customMib: '30 MiB/s' })).toEqual({ ok: true, setting: fixed(30) });
  });

  it('asks for a number where one is missing, and leaves the bounds to the engine', () => {
    for (const customMib of ['', 'fast', '1e', 'NaN', '12,5']) {
      const built = buildSetting({ ...defaultDraft(), kind: 'custom', customMib });
      expect(built.ok, customMib).toBe(false);
      if (!built.ok) expect(built.problem).toBe('Type the copy rate in MiB/s, such as 20.');
    }
    // Out of bounds is the engine's to refuse, with its own sentence.
    expect(buildSetting({ ...defaultDraft(), kind: 'custom', customMib: '0.1' }).ok).toBe(true);
  });

  it('adds the adaptive limits: latency by default at 50%, lag only when given', () => {
    const adaptive = { ...defaultDraft(), kind: 'normal' as const, adaptive: true };
    expect(buildSetting(adaptive)).toEqual({
      ok: true,
      setting: { level: 'normal', maxSourceLatencyIncreasePercent: 50, maxSecondaryLagSeconds: null },
    });
    expect(buildSetting({ ...adaptive, latencyPercent: '20%', lagSeconds: '10 s' })).toEqual({
      ok: true,
      setting: { level: 'normal', maxSourceLatencyIncreasePercent: 20, maxSecondaryLagSeconds: 10 },
    });
    expect(buildSetting({ ...adaptive, latencyPercent: '', lagSeconds: '10' })).toEqual({
      ok: true,
      setting: { level: 'normal', maxSourceLatencyIncreasePercent: null, maxSecondaryLagSeconds: 10 },
    });
    const neither = buildSetting({ ...adaptive, latencyPercent: ' ', lagSeconds: '' });
    expect(neither.ok ? null : neither.problem).toBe('Give a latency limit, a lag limit, or both, to adapt to the source.');
    const bad = buildSetting({ ...adaptive, lagSeconds: 'soon' });
    expect(bad.ok ? null : bad.problem).toContain("secondaries' lag limit");
    // Limits typed while the mode is off are not sent.
    expect(buildSetting({ ...defaultDraft(), latencyPercent: 'x' })).toEqual({ ok: true, setting: fixed('full') });
  });

  it('shows a running setting as a draft that builds it again', () => {
    for (const setting of [
      fixed('gentle'),
      fixed(7.5),
      { level: 'full', maxSourceLatencyIncreasePercent: 30, maxSecondaryLagSeconds: 5 },
      { level: 'normal', maxSourceLatencyIncreasePercent: null, maxSecondaryLagSeconds: 12 },
    ]) {
      expect(buildSetting(draftOf(setting))).toEqual({ ok: true, setting });
    }
    expect(draftOf(fixed(7.5)).kind).toBe('custom');
  });

  it('reads numbers strictly', () => {
    expect(parseNumber('42')).toBe(42);
    expect(parseNumber('.5')).toBe(0.5);
    expect(parseNumber('50%', '%')).toBe(50);
    expect(parseNumber('')).toBeNull();
    expect(parseNumber('Infinity')).toBeNull();
    expect(parseNumber('0x10')).toBeNull();
  });
});

describe('load in words', () => {
  it('names levels and caps', () => {
    expect(levelName('gentle')).toBe('gentle');
    expect(levelName(12.5)).toBe('12.5 MiB/s');
    expect(levelName(40)).toBe('40 MiB/s');
    expect(levelName(Number.NaN)).toBe('—');
    expect(formatMib(3.74)).toBe('3.7 MiB/s');
    expect(formatMib(250.4)).toBe('250 MiB/s');
    expect(formatCap(loadStatus(fixed('gentle')))).toBe('1 reader · 5 MiB/s');
    expect(formatCap(loadStatus(fixed('full')))).toBe('4 readers · no cap');
    expect(formatCap(loadStatus(fixed('normal'), { bytesPerSecond: 3.5 * 1024 * 1024 }))).toBe('2 readers · 3.5 MiB/s');
  });

  it('says what the adaptive mode is held to', () => {
    expect(formatLimits(fixed('full'))).toBeNull();
    expect(formatLimits({ level: 'full', maxSourceLatencyIncreasePercent: 50, maxSecondaryLagSeconds: 10 })).toBe(
      'reads within +50% of idle, secondaries within 10 s',
    );
  });
});

describe('LoadForm', () => {
  it('starts with no setting unless the user picks one', () => {
    const form = new LoadForm();
    expect(form.startSetting).toBeNull();
    form.draft.kind = 'gentle';
    expect(form.startSetting).toEqual(fixed('gentle'));
    form.draft.kind = 'full';
    form.draft.adaptive = true;
    expect(form.startSetting).toEqual({ level: 'full', maxSourceLatencyIncreasePercent: 50, maxSecondaryLagSeconds: null });
    form.draft.kind = 'custom';
    form.draft.customMib = '';
    expect(form.problem).toBe('Type the copy rate in MiB/s, such as 20.');
  });
});

describe('LoadControl', () => {
  async function running(backend = new FakeBackend()) {
    backend.current = progress({ load: loadStatus(fixed('full')) });
    const sync = new SyncState(backend);
    await sync.attach();
    return { backend, sync, control: sync.load };
  }

  it('shows the level the migration runs at', async () => {
    const { backend, sync, control } = await running();
    expect(control.form.draft.kind).toBe('full');
    backend.emit({ kind: 'progress', ...progress({ load: loadStatus(fixed(35)) }) });
    expect(control.form.draft.kind).toBe('custom');
    expect(control.form.draft.customMib).toBe('35');
    expect(control.dirty).toBe(false);
    expect(sync.progress?.load?.level).toBe(35);
  });

  it('applies a named level at once and shows the answer before the next snapshot', async () => {
    const { backend, sync, control } = await running();
    expect(await control.choose('gentle')).toBe(true);
    expect(backend.called('setLoad')).toEqual([[fixed('gentle')]]);
    expect(sync.progress?.load?.level).toBe('gentle');
    expect(control.dirty).toBe(false);
  });

  it('waits for Apply on a custom rate and the adaptive limits', async () => {
    const { backend, control } = await running();
    await control.choose('custom');
    expect(backend.called('setLoad')).toHaveLength(0);
    control.form.draft.customMib = '12.5';
    await control.setAdaptive(true);
    expect(backend.called('setLoad')).toHaveLength(0);
    expect(control.dirty).toBe(true);
    await control.apply();
    expect(backend.called('setLoad')).toEqual([[{ level: 12.5, maxSourceLatencyIncreasePercent: 50, maxSecondaryLagSeconds: null }]]);
    // Turning the mode off applies at once.
    await control.setAdaptive(false);
    expect(backend.called('setLoad').at(-1)).toEqual([fixed(12.5)]);
  });

  it('keeps what the user is typing when a snapshot arrives', async () => {
    const { backend, control } = await running();
    await control.choose('custom');
    control.form.draft.customMib = '8';
    backend.emit({ kind: 'progress', ...progress({ load: loadStatus(fixed('full'), { throttling: true }) }) });
    expect(control.form.draft.customMib).toBe('8');
    control.revert();
    expect(control.form.draft.kind).toBe('full');
  });

  it("keeps the engine's refusal as its error, and the level as it was", async () => {
    const { backend, sync, control } = await running();
    backend.loadAnswer = async () => {
      throw fail('invalid_load_level', "'0.1' cannot be a load level: a copy rate must be between 0.5 and 100000 MiB/s.", 'Use gentle, normal, full, or a copy rate in MiB/s such as 20.');
    };
    await control.choose('custom');
    control.form.draft.customMib = '0.1';
    expect(await control.apply()).toBe(false);
    expect(control.error?.code).toBe('invalid_load_level');
    expect(sync.progress?.load?.level).toBe('full');
    // A draft that is no setting is refused here, with what to type.
    control.form.draft.customMib = 'lots';
    expect(await control.apply()).toBe(false);
    expect(control.error?.message).toBe('Type the copy rate in MiB/s, such as 20.');
    expect(backend.called('setLoad')).toHaveLength(1);
  });
});
