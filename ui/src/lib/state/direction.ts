// Which way a migration runs, in names the user knows: a cluster is
// named by its hosts (never its user, password or options), as the
// engine's directionMapping reports them once a migration runs, or from
// the wizard's connection strings before. Pure functions.
import type { DirectionMapping } from '$lib/bindings/DirectionMapping';

/** The hosts of a connection string: `mongodb://u:p@a:1,b:2/?x=y` → `a:1,b:2`. */
export function clusterName(uri: string): string {
  const rest = uri.trim().replace(/^mongodb(\+srv)?:\/\//, '');
  // The user and password end at the last '@' before the path.
  const authority = rest.split(/[/?]/, 1)[0] ?? '';
  return authority.slice(authority.lastIndexOf('@') + 1);
}

/** The two clusters of the live direction: the reverse runs from the new cluster back to the old one. */
export interface Direction {
  /** The sync runs back, from the cluster the wizard migrated to. */
  reverse: boolean;
  from: string;
  to: string;
}

/**
 * What the engine's directionMapping calls the two clusters the shell
 * gives it. The shell always gives them in the order the migration
 * started (the wizard's source first, and a resumed migration's
 * remembered clusters in that order too), so a live source named
 * `cluster1` means the migration runs back. The shell reads the same
 * names (`CLUSTER_NAMES` in src/progress.rs; `runs_back` in src-tauri/src/state.rs).
 */
export const CLUSTER_NAMES = ['cluster0', 'cluster1'] as const;

/** One side of a directionMapping, `"cluster0: a:1,b:2"`: its name and its hosts. */
export function mappedCluster(side: string): { name: string; hosts: string } {
  const at = side.indexOf(': ');
  return at < 0 ? { name: '', hosts: side.trim() } : { name: side.slice(0, at), hosts: side.slice(at + 2).trim() };
}

/** The direction the engine reports. */
export function mappedDirection(mapping: DirectionMapping): Direction {
  const from = mappedCluster(mapping.Source);
  const to = mappedCluster(mapping.Destination);
  return {
    reverse: from.name === CLUSTER_NAMES[1],
    from: from.hosts || 'the source',
    to: to.hosts || 'the destination',
  };
}

/** The mapping the other way round, as a reverse turns it. */
export function turned(mapping: DirectionMapping): DirectionMapping {
  return { Source: mapping.Destination, Destination: mapping.Source };
}

/**
 * The direction from the wizard's source to its destination, by their
 * connection strings, before the engine reports one; each unnamed one is
 * called what it is.
 */
export function direction(sourceUri: string, destinationUri: string): Direction {
  return {
    reverse: false,
    from: clusterName(sourceUri) || 'the source',
    to: clusterName(destinationUri) || 'the destination',
  };
}

/** "Reverse: b:2 → a:1", or "a:1 → b:2" forward. */
export function directionLabel(d: Direction): string {
  return `${d.reverse ? 'Reverse: ' : ''}${d.from} → ${d.to}`;
}
