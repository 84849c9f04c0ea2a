// Number, size and duration formatting for the dashboard. Pure functions.

const units = ['B', 'KB', 'MB', 'GB', 'TB'];

/** 1536 → "1.5 KB" (powers of 1024, as MongoDB reports sizes). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** 1234567 → "1,234,567". */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Seconds → "45 s", "3 min 20 s", "2 h 5 min"; null → "unknown". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return 'unknown';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Percentage 0..100 of done/total, 0 when the total is unknown. */
export function percent(done: number, total: number): number {
  if (total <= 0) return 0;
  return Math.min(100, (done / total) * 100);
}

/** Lag in seconds: one decimal under 10 s ("0.4 s"), else as a duration. */
export function formatLag(seconds: number): string {
  return seconds < 10 ? `${Math.max(0, seconds).toFixed(1)} s` : formatDuration(seconds);
}
