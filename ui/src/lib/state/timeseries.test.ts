import { describe, expect, it } from 'vitest';
import type { CollectionNode } from '$lib/bindings/CollectionNode';
import type { Measurements } from '$lib/bindings/Measurements';
import type { TimeseriesNode } from '$lib/bindings/TimeseriesNode';
import { contents, copyLabel, formatCollections, formatContents, formatMeasurements, measurementsNote, timeseriesDetail } from './timeseries';

const series = (measurements: Measurements, overrides: Partial<TimeseriesNode> = {}): TimeseriesNode => ({
  timeField: 't',
  metaField: 'sensor',
  granularity: 'seconds',
  bucketMaxSpanSeconds: 3600,
  expireAfterSeconds: null,
  buckets: 120,
  measurements,
  ...overrides,
});

const node = (name: string, documents: number, bytes: number, timeseries: TimeseriesNode | null = null): CollectionNode => ({
  name,
  namespace: `db.${name}`,
  kind: timeseries ? 'timeseries' : 'collection',
  documents,
  bytes,
  timeseries,
});

describe('time-series collections in the scope step', () => {
  it('shows exact, estimated and unknown measurement counts for what they are', () => {
    expect(formatMeasurements({ kind: 'exact', count: 12345 })).toBe('12,345 measurements');
    expect(formatMeasurements({ kind: 'exact', count: 1 })).toBe('1 measurement');
    const estimated: Measurements = { kind: 'estimated', count: 2_000_000, sampled: 100, why: 'counting them exactly would take the source longer than 10 s' };
    expect(formatMeasurements(estimated)).toBe('~2,000,000 measurements');
    expect(measurementsNote(estimated)).toBe('Estimated from 100 sampled buckets, because counting them exactly would take the source longer than 10 s.');
    const unknown: Measurements = { kind: 'unknown', why: 'counting them failed: not authorized' };
    expect(formatMeasurements(unknown)).toBe('measurements unknown');
    expect(measurementsNote(unknown)).toBe('Not counted, because counting them failed: not authorized.');
    expect(measurementsNote({ kind: 'exact', count: 3 })).toBeNull();
  });

  it('describes buckets, granularity, fields and TTL on a second line', () => {
    expect(timeseriesDetail(series({ kind: 'exact', count: 5 }))).toBe('120 buckets · granularity seconds · time t · meta sensor');
    expect(
      timeseriesDetail(
        series({ kind: 'exact', count: 5 }, { buckets: 1, granularity: null, bucketMaxSpanSeconds: 600, metaField: null, expireAfterSeconds: 2_592_000 }),
      ),
    ).toBe('1 bucket · buckets span 10 min · time t · expires after 30 d');
  });

  it('adds up documents and measurements apart, never counting buckets as documents', () => {
    const c = contents([
      node('orders', 1500, 3_000_000),
      node('metrics', 120, 500_000, series({ kind: 'exact', count: 20_000 })),
      node('events', 40, 100_000, series({ kind: 'estimated', count: 4_000, sampled: 40, why: 'it is slow' })),
    ]);
    expect(c).toEqual({ collections: 3, timeseries: 2, documents: 1500, measurements: 24_000, estimated: true, unknown: 0, bytes: 3_600_000 });
    expect(formatContents(c)).toBe('1,500 documents · ~24,000 measurements');
    expect(formatCollections(c)).toBe('3 collections (2 time-series)');
  });

  it('says so when a count is missing, and stays plain without time-series', () => {
    const plain = contents([node('orders', 18_000, 1)]);
    expect(formatContents(plain)).toBe('18,000 documents');
    expect(formatCollections(plain)).toBe('1 collection');
    const partly = contents([
      node('a', 1, 1, series({ kind: 'exact', count: 10 })),
      node('b', 1, 1, series({ kind: 'unknown', why: 'x' })),
    ]);
    expect(formatContents(partly)).toBe('at least 10 measurements');
    expect(formatContents(contents([node('b', 1, 1, series({ kind: 'unknown', why: 'x' }))]))).toBe('measurements unknown');
    expect(formatContents(contents([]))).toBe('0 documents');
  });
});

describe('copyLabel', () => {
  it('names buckets after their time-series collection', () => {
    expect(copyLabel('iot.system.buckets.metrics')).toEqual({ label: 'iot.metrics (time-series)', unit: 'buckets' });
    expect(copyLabel('shop.orders')).toEqual({ label: 'shop.orders', unit: 'documents' });
    expect(copyLabel('shop.system.bucketsx')).toEqual({ label: 'shop.system.bucketsx', unit: 'documents' });
  });
});
