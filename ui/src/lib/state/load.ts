// The load a migration may put on its source, as the wizard offers and
// shows it: the levels in words, a setting built from what the user typed,
// and the status the engine reports in words. Pure functions; the engine
// alone decides what a level allows and whether a setting is acceptable.
import type { LoadSetting } from '$lib/bindings/LoadSetting';
import type { LoadStatus } from '$lib/bindings/LoadStatus';

export type LevelKind = 'gentle' | 'normal' | 'full' | 'custom';

export interface LevelOption {
  value: LevelKind;
  label: string;
  detail: string;
}

/** The levels, as the start of a sync and the live control offer them. */
export const LOAD_LEVELS: readonly LevelOption[] = [
  { value: 'gentle', label: 'Gentle', detail: 'One range at a time, 5 MiB/s: for business hours.' },
  { value: 'normal', label: 'Normal', detail: 'Two ranges at a time, 20 MiB/s.' },
  { value: 'full', label: 'Full', detail: 'As fast as both clusters allow.' },
  { value: 'custom', label: 'Custom', detail: 'A copy rate you choose, in MiB/s.' },
];

export const ADAPTIVE_DETAIL =
  "Slows the copy while the source's reads are slower than idle by more than the limit, or its secondaries fall behind; speeds up when it recovers.";

/** The latency limit the adaptive mode is offered with, in percent. */
export const DEFAULT_LATENCY_PERCENT = 50;

const MIB = 1024 * 1024;

/** What the user has chosen or typed; the text fields are kept as typed. */
export interface LoadDraft {
  kind: LevelKind;
  /** Custom rate in MiB/s, as typed. */
  customMib: string;
  adaptive: boolean;
  /** Latency limit in percent, as typed. */
  latencyPercent: string;
  /** Secondary lag limit in seconds, as typed; empty for none. */
  lagSeconds: string;
}

export function defaultDraft(): LoadDraft {
  return { kind: 'full', customMib: '20', adaptive: false, latencyPercent: String(DEFAULT_LATENCY_PERCENT), lagSeconds: '' };
}

/** A number as typed ("12.5", " 20 ", "50%", "10 s"); null when it is none. */
export function parseNumber(text: string, suffix = ''): number | null {
  let t = text.trim();
  if (suffix && t.toLowerCase().endsWith(suffix)) t = t.slice(0, -suffix.length).trim();
  if (t === '' || !/^[+-]?(\d+\.?\d*|\.\d+)$/.test(t)) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

export type Built = { ok: true; setting: LoadSetting } | { ok: false; problem: string };

/**
 * The setting a draft asks for, or what keeps it from being one. Only the
 * shape is judged here (a number where one is needed); the engine judges
 * the bounds and answers with its own sentence.
 */
export function buildSetting(draft: LoadDraft): Built {
  let level: string | number = draft.kind;
  if (draft.kind === 'custom') {
    const mib = parseNumber(draft.customMib, 'mib/s');
    if (mib === null) return { ok: false, problem: 'Type the copy rate in MiB/s, such as 20.' };
    level = mib;
  }
  let latency: number | null = null;
  let lag: number | null = null;
  if (draft.adaptive) {
    if (draft.latencyPercent.trim() !== '') {
      latency = parseNumber(draft.latencyPercent, '%');
      if (latency === null) return { ok: false, problem: 'Type the latency limit in percent, such as 50.' };
    }
    if (draft.lagSeconds.trim() !== '') {
      lag = parseNumber(draft.lagSeconds, 's');
      if (lag === null) return { ok: false, problem: "Type the secondaries' lag limit in seconds, such as 10, or leave it empty." };
    }
    if (latency === null && lag === null) {
      return { ok: false, problem: 'Give a latency limit, a lag limit, or both, to adapt to the source.' };
    }
  }
  return { ok: true, setting: { level, maxSourceLatencyIncreasePercent: latency, maxSecondaryLagSeconds: lag } };
}

/** The draft that shows a setting (the one a migration runs at). */
export function draftOf(setting: LoadSetting): LoadDraft {
  const base = defaultDraft();
  const named = typeof setting.level === 'string' && ['gentle', 'normal', 'full'].includes(setting.level);
  const latency = setting.maxSourceLatencyIncreasePercent;
  const lag = setting.maxSecondaryLagSeconds;
  return {
    kind: named ? (setting.level as LevelKind) : 'custom',
    customMib: named ? base.customMib : String(setting.level),
    adaptive: latency !== null || lag !== null,
    // An adaptive setting without a latency limit shows none, not the default.
    latencyPercent: latency !== null ? String(latency) : lag !== null ? '' : base.latencyPercent,
    lagSeconds: lag !== null ? String(lag) : '',
  };
}

/** Whether two settings ask for the same thing. */
export function sameSetting(a: LoadSetting, b: LoadSetting): boolean {
  return (
    String(a.level) === String(b.level) &&
    a.maxSourceLatencyIncreasePercent === b.maxSourceLatencyIncreasePercent &&
    a.maxSecondaryLagSeconds === b.maxSecondaryLagSeconds
  );
}

/** A rate in MiB/s: "5 MiB/s", "12.5 MiB/s", "0.8 MiB/s". */
export function formatMib(mib: number): string {
  const digits = mib >= 100 || Number.isInteger(mib) ? 0 : 1;
  return `${Number(mib.toFixed(digits))} MiB/s`;
}

/** The level's name: "gentle", "normal", "full" or "12.5 MiB/s". */
export function levelName(level: LoadSetting['level']): string {
  if (typeof level === 'number') return Number.isFinite(level) ? formatMib(level) : '—';
  const n = Number(level);
  return level.trim() !== '' && Number.isFinite(n) ? formatMib(n) : level;
}

/** What the copy is held to now: "1 reader · 5 MiB/s", "4 readers · no cap". */
export function formatCap(status: LoadStatus): string {
  const readers = `${status.readers} ${status.readers === 1 ? 'reader' : 'readers'}`;
  const bps = status.bytesPerSecond;
  const rate = bps === null || !Number.isFinite(bps) ? 'no cap' : formatMib(bps / MIB);
  return `${readers} · ${rate}`;
}

/** The adaptive mode's limits in words: "reads within +50% of idle, secondaries within 10 s". */
export function formatLimits(setting: LoadSetting): string | null {
  const parts: string[] = [];
  const latency = setting.maxSourceLatencyIncreasePercent;
  const lag = setting.maxSecondaryLagSeconds;
  if (latency !== null && Number.isFinite(latency)) parts.push(`reads within +${latency}% of idle`);
  if (lag !== null && Number.isFinite(lag)) parts.push(`secondaries within ${lag} s`);
  return parts.length > 0 ? parts.join(', ') : null;
}

/** The setting a status holds to (the status carries it flattened). */
export function settingOf(status: LoadStatus): LoadSetting {
  return {
    level: status.level,
    maxSourceLatencyIncreasePercent: status.maxSourceLatencyIncreasePercent,
    maxSecondaryLagSeconds: status.maxSecondaryLagSeconds,
  };
}
