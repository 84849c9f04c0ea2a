// The scope step: the source's tree of databases and collections, which of
// them are selected, and the include patterns that selection becomes.
import { SvelteSet } from 'svelte/reactivity';
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { ScopeTree } from '$lib/bindings/ScopeTree';
import { contents, type Contents } from './timeseries';

/**
 * The engine's include/exclude patterns for a selection: nothing when all
 * is selected (so collections created later are migrated too), a whole
 * database as `db`, otherwise each collection as `db.coll`.
 */
export function toPatterns(tree: ScopeTree, selected: ReadonlySet<string>): { include: string[]; exclude: string[] } {
  const all = tree.databases.every((db) => db.collections.every((c) => selected.has(c.namespace)));
  if (all) return { include: [], exclude: [] };
  const include: string[] = [];
  for (const db of tree.databases) {
    const chosen = db.collections.filter((c) => selected.has(c.namespace));
    if (chosen.length === 0) continue;
    if (chosen.length === db.collections.length) include.push(db.name);
    else include.push(...chosen.map((c) => c.namespace));
  }
  return { include, exclude: [] };
}

export type TreeStatus =
  | { kind: 'idle' }
  | { kind: 'loading' }
  | { kind: 'ready'; tree: ScopeTree }
  | { kind: 'failed'; error: ErrorInfo };

export class ScopeState {
  status: TreeStatus = $state({ kind: 'idle' });
  readonly selected = new SvelteSet<string>();
  filter = $state('');
  private loadedFor = '';

  constructor(private readonly backend: Backend) {}

  get tree(): ScopeTree | null {
    return this.status.kind === 'ready' ? this.status.tree : null;
  }

  /** Loads the source's tree, all selected; a no-op for the same source. */
  async load(sourceUri: string, sourceProfile: string | null = null): Promise<void> {
    const key = `${sourceProfile ?? ''}\n${sourceUri}`;
    if (this.loadedFor === key && this.status.kind === 'ready') return;
    this.status = { kind: 'loading' };
    try {
      const tree = await this.backend.scopeTree({ sourceUri, sourceProfile });
      this.selected.clear();
      for (const db of tree.databases) for (const c of db.collections) this.selected.add(c.namespace);
      this.loadedFor = key;
      this.status = { kind: 'ready', tree };
    } catch (error) {
      this.status = { kind: 'failed', error: toErrorInfo(error) };
    }
  }

  /** The tree narrowed to names containing the filter text. */
  get visible(): ScopeTree['databases'] {
    const tree = this.tree;
    if (!tree) return [];
    const f = this.filter.trim().toLowerCase();
    if (!f) return tree.databases;
    return tree.databases
      .map((db) =>
        db.name.toLowerCase().includes(f)
          ? db
          : { ...db, collections: db.collections.filter((c) => c.namespace.toLowerCase().includes(f)) },
      )
      .filter((db) => db.collections.length > 0);
  }

  toggle(namespace: string): void {
    if (this.selected.has(namespace)) this.selected.delete(namespace);
    else this.selected.add(namespace);
  }

  /** Selects every collection of `db`, or deselects them all if all were selected. */
  toggleDatabase(db: string): void {
    const node = this.tree?.databases.find((d) => d.name === db);
    if (!node) return;
    const all = node.collections.every((c) => this.selected.has(c.namespace));
    for (const c of node.collections) {
      if (all) this.selected.delete(c.namespace);
      else this.selected.add(c.namespace);
    }
  }

  databaseState(db: string): 'all' | 'some' | 'none' {
    const node = this.tree?.databases.find((d) => d.name === db);
    if (!node) return 'none';
    const n = node.collections.filter((c) => this.selected.has(c.namespace)).length;
    return n === 0 ? 'none' : n === node.collections.length ? 'all' : 'some';
  }

  /** What the selection holds: documents, and time-series measurements apart. */
  get selectedTotals(): Contents {
    const chosen = (this.tree?.databases ?? []).flatMap((db) => db.collections.filter((c) => this.selected.has(c.namespace)));
    return contents(chosen);
  }

  /** What a database holds, all of it, selected or not. */
  databaseContents(db: string): Contents {
    return contents(this.tree?.databases.find((d) => d.name === db)?.collections ?? []);
  }

  get patterns(): { include: string[]; exclude: string[] } {
    const tree = this.tree;
    return tree ? toPatterns(tree, this.selected) : { include: [], exclude: [] };
  }
}
