import { describe, expect, it } from 'vitest';
import { clusterName, direction, directionLabel } from './direction';

describe('direction', () => {
  it('names a cluster by its hosts, never its credentials or options', () => {
    expect(clusterName('mongodb://127.0.0.1:1/?replicaSet=s')).toBe('127.0.0.1:1');
    expect(clusterName('mongodb://alice:p%40ss@db1:27017,db2:27017/admin?replicaSet=rs')).toBe('db1:27017,db2:27017');
    expect(clusterName('mongodb+srv://u:****@cluster0.abc.mongodb.net/')).toBe('cluster0.abc.mongodb.net');
    expect(clusterName('mongodb://db3')).toBe('db3');
    expect(clusterName('')).toBe('');
  });

  it('runs from the destination back to the source once reversed', () => {
    const forward = direction('mongodb://old:1/', 'mongodb://new:2/', false);
    expect(forward).toEqual({ reverse: false, from: 'old:1', to: 'new:2' });
    expect(directionLabel(forward)).toBe('old:1 → new:2');
    const back = direction('mongodb://old:1/', 'mongodb://new:2/', true);
    expect(directionLabel(back)).toBe('Reverse: new:2 → old:1');
    // A resumed migration whose strings the wizard never saw.
    expect(directionLabel(direction('', '', true))).toBe('Reverse: the destination → the source');
  });
});
