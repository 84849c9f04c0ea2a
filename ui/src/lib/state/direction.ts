// Which way a migration runs, in names the user knows: a cluster is
// named by the hosts of its connection string (never its user, password
// or options). Pure functions.

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
 * The live direction between the wizard's source and destination
 * connection strings; each unnamed one is called what it is.
 */
export function direction(sourceUri: string, destinationUri: string, reversed: boolean): Direction {
  const source = clusterName(sourceUri) || 'the source';
  const destination = clusterName(destinationUri) || 'the destination';
  return reversed ? { reverse: true, from: destination, to: source } : { reverse: false, from: source, to: destination };
}

/** "Reverse: b:2 → a:1", or "a:1 → b:2" forward. */
export function directionLabel(d: Direction): string {
  return `${d.reverse ? 'Reverse: ' : ''}${d.from} → ${d.to}`;
}
