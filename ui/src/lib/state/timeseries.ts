// What the scope step says about time-series collections and about what a
// selection holds. A time-series collection's documents are measurements,
// stored in buckets: its node counts buckets (what the copy moves) and
// carries its measurements apart, exact, estimated or unknown. Pure.
import type { CollectionNode } from '$lib/bindings/CollectionNode';
import type { Measurements } from '$lib/bindings/Measurements';
import type { TimeseriesNode } from '$lib/bindings/TimeseriesNode';
import { formatCount } from './format';

/** What some collections hold, added up. */
export type Contents = {
  /** Collections, views and time-series collections. */
  collections: number;
  /** Of which time-series. */
  timeseries: number;
  /** Documents of ordinary collections (a time-series collection's buckets are not counted here). */
  documents: number;
  /** Measurements of the time-series collections whose count is known (exact or estimated). */
  measurements: number;
  /** Whether `measurements` includes an estimate. */
  estimated: boolean;
  /** Time-series collections whose measurements are unknown. */
  unknown: number;
  /** Uncompressed data size (a time-series collection's buckets'). */
  bytes: number;
};

export function contents(collections: Iterable<CollectionNode>): Contents {
  const c: Contents = { collections: 0, timeseries: 0, documents: 0, measurements: 0, estimated: false, unknown: 0, bytes: 0 };
  for (const node of collections) {
    c.collections += 1;
    c.bytes += node.bytes;
    const ts = node.timeseries;
    if (!ts) {
      c.documents += node.documents;
      continue;
    }
    c.timeseries += 1;
    const m = ts.measurements;
    if (m.kind === 'unknown') c.unknown += 1;
    else c.measurements += m.count;
    if (m.kind === 'estimated') c.estimated = true;
  }
  return c;
}

/** "12,345 measurements", "~12,300 measurements" (estimated), "measurements unknown". */
export function formatMeasurements(m: Measurements): string {
  switch (m.kind) {
    case 'exact':
      return `${formatCount(m.count)} ${m.count === 1 ? 'measurement' : 'measurements'}`;
    case 'estimated':
      return `~${formatCount(m.count)} measurements`;
    case 'unknown':
      return 'measurements unknown';
  }
}

/** Why a count is estimated or unknown, as a sentence for a tooltip; null when it is exact. */
export function measurementsNote(m: Measurements): string | null {
  switch (m.kind) {
    case 'exact':
      return null;
    case 'estimated':
      return `Estimated from ${formatCount(m.sampled)} sampled ${m.sampled === 1 ? 'bucket' : 'buckets'}, because ${m.why}.`;
    case 'unknown':
      return `Not counted, because ${m.why}.`;
  }
}

/** 86400 → "1 d", 3600 → "1 h", 90 → "90 s". */
function span(seconds: number): string {
  if (seconds >= 86_400 && seconds % 86_400 === 0) return `${seconds / 86_400} d`;
  if (seconds >= 3_600 && seconds % 3_600 === 0) return `${seconds / 3_600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${formatCount(seconds)} s`;
}

/** The secondary line of a time-series collection: "120 buckets · granularity seconds · time t · meta sensor · expires after 30 d". */
export function timeseriesDetail(ts: TimeseriesNode): string {
  const parts = [`${formatCount(ts.buckets)} ${ts.buckets === 1 ? 'bucket' : 'buckets'}`];
  if (ts.granularity) parts.push(`granularity ${ts.granularity}`);
  else if (ts.bucketMaxSpanSeconds !== null) parts.push(`buckets span ${span(ts.bucketMaxSpanSeconds)}`);
  parts.push(`time ${ts.timeField}`);
  if (ts.metaField) parts.push(`meta ${ts.metaField}`);
  if (ts.expireAfterSeconds !== null) parts.push(`expires after ${span(ts.expireAfterSeconds)}`);
  return parts.join(' · ');
}

/**
 * What a selection holds, in words: "1,500 documents", or with time-series
 * collections "1,500 documents · ~20,000 measurements"; an unknown count
 * makes the known part a lower bound ("at least 20,000 measurements").
 */
export function formatContents(c: Contents): string {
  const parts: string[] = [];
  if (c.timeseries < c.collections || c.timeseries === 0) parts.push(`${formatCount(c.documents)} documents`);
  if (c.timeseries > 0) {
    if (c.unknown === c.timeseries) parts.push('measurements unknown');
    else {
      const n = `${c.estimated ? '~' : ''}${formatCount(c.measurements)} measurements`;
      parts.push(c.unknown > 0 ? `at least ${n}` : n);
    }
  }
  return parts.join(' · ');
}

/** "4 collections", "4 collections (1 time-series)". */
export function formatCollections(c: Contents): string {
  const n = `${c.collections} ${c.collections === 1 ? 'collection' : 'collections'}`;
  return c.timeseries > 0 ? `${n} (${c.timeseries} time-series)` : n;
}

/**
 * How the copy's per-collection progress names a namespace: a time-series
 * collection's buckets (`db.system.buckets.x`, which is what is copied)
 * under the collection's own name, counted in buckets.
 */
export function copyLabel(namespace: string): { label: string; unit: 'documents' | 'buckets' } {
  const m = /^([^.]+)\.system\.buckets\.(.+)$/.exec(namespace);
  return m ? { label: `${m[1]}.${m[2]} (time-series)`, unit: 'buckets' } : { label: namespace, unit: 'documents' };
}
