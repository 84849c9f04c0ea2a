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
      include: ['crm', 'shop.customers', 'shop.recent'],
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
    expect(scope.selectedTotals).toEqual({ collections: 4, documents: 1500, bytes: 3_000_000 });
    scope.toggleDatabase('shop');
    expect(scope.databaseState('shop')).toBe('none');
    expect(scope.selectedTotals.collections).toBe(1);
    scope.toggle('shop.orders');
    expect(scope.databaseState('shop')).toBe('some');
    scope.filter = 'ord';
    expect(scope.visible.map((d) => d.collections.map((c) => c.namespace))).toEqual([['shop.orders']]);
    expect(scope.patterns.include).toEqual(['crm', 'shop.orders']);
  });
});
