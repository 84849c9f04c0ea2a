import { describe, expect, it } from 'vitest';
import { FakeBackend, sampleTree } from '$lib/backend/fake';
import { ScopeState, toPatterns } from './scope.svelte';

const all = () => new Set(sampleTree.databases.flatMap((d) => d.collections.map((c) => c.namespace)));

describe('toPatterns', () => {
  it('includes nothing (everything) when all is selected', () => {
    expect(toPatterns(sampleTree, all())).toEqual({ include: [], exclude: [] });
  });

  it('names a whole database, or single collections', () => {
    const selected = all();
    selected.delete('shop.orders');
    expect(toPatterns(sampleTree, selected)).toEqual({
      include: ['crm', 'iot', 'shop.customers', 'shop.recent'],
      exclude: [],
    });
  });

  it('leaves out a database with nothing selected', () => {
    expect(toPatterns(sampleTree, new Set(['shop.orders']))).toEqual({ include: ['shop.orders'], exclude: [] });
  });
});

describe('ScopeState', () => {
  it('loads everything selected, toggles, filters and totals', async () => {
    const scope = new ScopeState(new FakeBackend());
    await scope.load('mongodb://src');
    // The time-series collection's 120 buckets are not documents: its
    // 24,000 measurements are counted apart.
    expect(scope.selectedTotals).toEqual({
      collections: 5,
      timeseries: 1,
      documents: 1500,
      measurements: 24_000,
      estimated: false,
      unknown: 0,
      bytes: 3_500_000,
    });
    expect(scope.databaseContents('iot').measurements).toBe(24_000);
    scope.toggleDatabase('shop');
    expect(scope.databaseState('shop')).toBe('none');
    expect(scope.selectedTotals.collections).toBe(2);
    scope.toggle('iot.readings');
    expect(scope.selectedTotals).toMatchObject({ collections: 1, timeseries: 0, measurements: 0 });
    scope.toggle('iot.readings');
    scope.toggle('shop.orders');
    expect(scope.databaseState('shop')).toBe('some');
    scope.filter = 'ord';
    expect(scope.visible.map((d) => d.collections.map((c) => c.namespace))).toEqual([['shop.orders']]);
    expect(scope.patterns.include).toEqual(['crm', 'iot', 'shop.orders']);
  });
});
