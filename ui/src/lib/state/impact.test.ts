import { describe, expect, it } from 'vitest';
import { sourceImpact as emptyImpact } from '$lib/backend/fake';
import type { SourceImpact } from '$lib/bindings/SourceImpact';
import {
  formatHeadroom,
  formatIncrease,
  formatLagSeconds,
  formatMs,
  formatShare,
  formatWhole,
  impactRows,
  NONE,
  readLatencyTable,
} from './impact';

const fullImpact: SourceImpact = {
  readLatencyMs: { p50: 1.24, p90: 3.4, p99: 12.2 },
  idleReadLatencyMs: { p50: 0.8, p90: 2.5, p99: 6 },
  readLatencyIncreasePercent: 36.2,
  writeLatencyMs: 2.13,
  idleWriteLatencyMs: 1.8,
  queuedOperations: 3,
  readTicketsOut: 12,
  readTicketsTotal: 128,
  cacheUsedPercent: 78.4,
  cacheDirtyPercent: 4.23,
  secondaryLagSeconds: 2.5,
  laggingMember: 'db3.example.net:27017',
  oplogHeadroomSeconds: 3 * 3600 + 20 * 60 + 15,
  notMeasured: [],
};

const missing = [null, undefined, Number.NaN, Number.POSITIVE_INFINITY];

describe('impact figures', () => {
  it('are a dash when missing, never NaN or undefined', () => {
    for (const m of missing) {
      for (const f of [formatMs, formatIncrease, formatShare, formatWhole, formatHeadroom, formatLagSeconds]) {
        expect(f(m), `${f.name}(${m})`).toBe(NONE);
      }
    }
    expect(readLatencyTable(emptyImpact({ readLatencyMs: { p50: Number.NaN, p90: 2, p99: 3 } }))?.rows[0]?.p50).toBe(NONE);
  });

  it('read in the units a DBA expects', () => {
    expect(formatMs(0.423)).toBe('0.42 ms');
    expect(formatMs(4.26)).toBe('4.3 ms');
    expect(formatMs(42.4)).toBe('42 ms');
    expect(formatMs(420.6)).toBe('421 ms');
    expect(formatMs(1250)).toBe('1.3 s');
    expect(formatIncrease(36.2)).toBe('+36%');
    expect(formatIncrease(-4.4)).toBe('−4%');
    expect(formatShare(78.4)).toBe('78%');
    expect(formatShare(4.23)).toBe('4.2%');
    expect(formatWhole(12345)).toBe('12,345');
    expect(formatHeadroom(3 * 3600 + 20 * 60 + 15)).toBe('3 h 20 min');
    expect(formatHeadroom(45 * 60)).toBe('45 min');
    expect(formatHeadroom(30)).toBe('under a minute');
    expect(formatHeadroom(50 * 3600)).toBe('50 h 0 min');
    expect(formatLagSeconds(0.42)).toBe('0.4 s');
    expect(formatLagSeconds(12.4)).toBe('12 s');
    expect(formatLagSeconds(185)).toBe('3 min 5 s');
  });
});

describe('impactRows', () => {
  it('has no line for figures that are all missing', () => {
    const none = emptyImpact({ notMeasured: ['Queued operations: serverStatus is not allowed.'] });
    expect(impactRows(none)).toEqual([]);
    expect(readLatencyTable(none)).toBeNull();
  });

  it('puts now above idle, and the member beside its lag', () => {
    expect(readLatencyTable(fullImpact)).toEqual({
      rows: [
        { label: 'now', p50: '1.2 ms', p90: '3.4 ms', p99: '12 ms' },
        { label: 'idle', p50: '0.80 ms', p90: '2.5 ms', p99: '6.0 ms' },
      ],
      increase: '+36%',
    });
    const rows = Object.fromEntries(impactRows(fullImpact).map((r) => [r.id, r]));
    expect(rows['write-latency']?.value).toBe('2.1 ms');
    expect(rows['write-latency']?.note).toBe('idle 1.8 ms');
    expect(rows['queued']?.value).toBe('3');
    expect(rows['tickets']?.value).toBe('12 of 128');
    expect(rows['cache']?.value).toBe('78% used · 4.2% dirty');
    expect(rows['secondary-lag']).toMatchObject({ value: '2.5 s behind', note: 'db3.example.net:27017' });
    expect(rows['oplog-headroom']?.value).toBe('3 h 20 min');
  });

  it('shows a figure on its own when its companions are missing', () => {
    const rows = impactRows(
      emptyImpact({ readLatencyMs: { p50: 1, p90: 2, p99: 3 }, cacheDirtyPercent: 2, readTicketsOut: 4, secondaryLagSeconds: 1 }),
    );
    const text = JSON.stringify(rows);
    expect(text).not.toMatch(/NaN|undefined/);
    expect(readLatencyTable(emptyImpact({ readLatencyMs: { p50: 1, p90: 2, p99: 3 } }))).toEqual({
      rows: [{ label: 'now', p50: '1.0 ms', p90: '2.0 ms', p99: '3.0 ms' }],
      increase: null,
    });
    expect(rows.find((r) => r.id === 'cache')?.value).toBe('— used · 2% dirty');
    expect(rows.find((r) => r.id === 'tickets')?.value).toBe('4');
    expect(rows.find((r) => r.id === 'secondary-lag')?.note).toBeNull();
    expect(rows.map((r) => r.id)).not.toContain('write-latency');
  });
});
