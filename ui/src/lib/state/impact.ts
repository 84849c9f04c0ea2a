// The source's health while the migration reads it, in words for the Sync
// step's impact panel. Every figure the engine reports may be missing (a
// privilege it lacks, a field an older server does not have, too few
// operations to judge): each formatter takes null or undefined, and
// anything that is not a finite number, and answers "—", never NaN.
import type { SourceImpact } from '$lib/bindings/SourceImpact';

export const NONE = '—';

type Maybe = number | null | undefined;

function finite(n: Maybe): n is number {
  return typeof n === 'number' && Number.isFinite(n);
}

/** Milliseconds: "0.42 ms", "4.2 ms", "42 ms", "1.2 s". */
export function formatMs(ms: Maybe): string {
  if (!finite(ms)) return NONE;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** A change against idle: "+35%", "−4%", "+0%". */
export function formatIncrease(percent: Maybe): string {
  if (!finite(percent)) return NONE;
  const rounded = Math.round(percent);
  return rounded < 0 ? `−${Math.abs(rounded)}%` : `+${rounded}%`;
}

/** A share: "78%", "4.2%", "0.3%". */
export function formatShare(percent: Maybe): string {
  if (!finite(percent)) return NONE;
  return percent >= 10 ? `${Math.round(percent)}%` : `${Number(percent.toFixed(1))}%`;
}

/** A whole count: "1,234". */
export function formatWhole(n: Maybe): string {
  return finite(n) ? Math.round(n).toLocaleString('en-US') : NONE;
}

/** How long the oplog still keeps the start: "3 h 20 min", "45 min", "under a minute". */
export function formatHeadroom(seconds: Maybe): string {
  if (!finite(seconds)) return NONE;
  const minutes = Math.floor(Math.max(0, seconds) / 60);
  if (minutes < 1) return 'under a minute';
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h === 0 ? `${m} min` : `${h} h ${m} min`;
}

/** Replication lag: "0.4 s", "12 s", "3 min 5 s". */
export function formatLagSeconds(seconds: Maybe): string {
  if (!finite(seconds)) return NONE;
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const whole = Math.round(s);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

/** One line of the impact panel. */
export interface ImpactRow {
  id: string;
  label: string;
  value: string;
  /** Beside the value, in muted text: the idle figure, a member's name. */
  note: string | null;
}

/** Read latency now and idle, one row each, for a small table. */
export interface ReadLatencyTable {
  rows: { label: 'now' | 'idle'; p50: string; p90: string; p99: string }[];
  /** The p99 against idle: "+36%"; null when not measured. */
  increase: string | null;
}

/** The read latency table, or null when nothing of it was measured. */
export function readLatencyTable(impact: SourceImpact): ReadLatencyTable | null {
  const rows: ReadLatencyTable['rows'] = [];
  for (const [label, latency] of [
    ['now', impact.readLatencyMs],
    ['idle', impact.idleReadLatencyMs],
  ] as const) {
    if (latency) rows.push({ label, p50: formatMs(latency.p50), p90: formatMs(latency.p90), p99: formatMs(latency.p99) });
  }
  const increase = finite(impact.readLatencyIncreasePercent) ? formatIncrease(impact.readLatencyIncreasePercent) : null;
  return rows.length > 0 || increase !== null ? { rows, increase } : null;
}

/**
 * The panel's other lines, in the order the panel shows them. A line
 * whose figures are all missing is left out; why it is missing is in
 * `notMeasured`, which the panel lists on its own.
 */
export function impactRows(impact: SourceImpact): ImpactRow[] {
  const rows: ImpactRow[] = [];
  const row = (id: string, label: string, value: string, note: string | null = null) =>
    rows.push({ id, label, value, note });
  if (finite(impact.writeLatencyMs) || finite(impact.idleWriteLatencyMs)) {
    row('write-latency', 'Write latency (mean)', formatMs(impact.writeLatencyMs), finite(impact.idleWriteLatencyMs) ? `idle ${formatMs(impact.idleWriteLatencyMs)}` : null);
  }
  if (finite(impact.queuedOperations)) row('queued', 'Queued operations', formatWhole(impact.queuedOperations));
  if (finite(impact.readTicketsOut) || finite(impact.readTicketsTotal)) {
    const total = finite(impact.readTicketsTotal) ? ` of ${formatWhole(impact.readTicketsTotal)}` : '';
    row('tickets', 'Read tickets in use', `${formatWhole(impact.readTicketsOut)}${total}`);
  }
  if (finite(impact.cacheUsedPercent) || finite(impact.cacheDirtyPercent)) {
    row('cache', 'Cache', `${formatShare(impact.cacheUsedPercent)} used · ${formatShare(impact.cacheDirtyPercent)} dirty`);
  }
  if (finite(impact.secondaryLagSeconds)) {
    row('secondary-lag', 'Furthest secondary', `${formatLagSeconds(impact.secondaryLagSeconds)} behind`, impact.laggingMember || null);
  }
  if (finite(impact.oplogHeadroomSeconds)) row('oplog-headroom', 'Oplog headroom', formatHeadroom(impact.oplogHeadroomSeconds));
  return rows;
}
