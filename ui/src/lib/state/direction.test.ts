import { describe, expect, it } from 'vitest';
import { clusterName, direction, directionLabel, mappedCluster, mappedDirection, turned } from './direction';

describe('direction', () => {
  it('names a cluster by its hosts, never its credentials or options', () => {
    expect(clusterName('mongodb://127.0.0.1:1/?replicaSet=s')).toBe('127.0.0.1:1');
    expect(clusterName('mongodb://alice:p%40ss@db1:27017,db2:27017/admin?replicaSet=rs')).toBe('db1:27017,db2:27017');
    expect(clusterName('mongodb+srv://u:****@cluster0.abc.mongodb.net/')).toBe('cluster0.abc.mongodb.net');
    expect(clusterName('mongodb://db3')).toBe('db3');
    expect(clusterName('')).toBe('');
  });

  it("runs from the wizard's source to its destination before the engine says", () => {
    const forward = direction('mongodb://old:1/', 'mongodb://new:2/');
    expect(forward).toEqual({ reverse: false, from: 'old:1', to: 'new:2' });
    expect(directionLabel(forward)).toBe('old:1 → new:2');
    expect(directionLabel(direction('', ''))).toBe('the source → the destination');
  });

  it("reads the engine's directionMapping: cluster0 is the cluster the migration started from", () => {
    expect(mappedCluster('cluster0: db1:27017,db2:27017')).toEqual({ name: 'cluster0', hosts: 'db1:27017,db2:27017' });
    expect(mappedCluster('db1:27017')).toEqual({ name: '', hosts: 'db1:27017' });
    const forward = { Source: 'cluster0: old:1', Destination: 'cluster1: new:2' };
    expect(mappedDirection(forward)).toEqual({ reverse: false, from: 'old:1', to: 'new:2' });
    // A reverse swaps the two strings, names and all.
    const back = turned(forward);
    expect(back).toEqual({ Source: 'cluster1: new:2', Destination: 'cluster0: old:1' });
    expect(directionLabel(mappedDirection(back))).toBe('Reverse: new:2 → old:1');
    // Forward again after the reverse's reverse.
    expect(mappedDirection(turned(back)).reverse).toBe(false);
  });
});
