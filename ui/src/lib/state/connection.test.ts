import { describe, expect, it } from 'vitest';
import { FakeBackend, fail } from '$lib/backend/fake';
import { buildUri, ConnectionState, emptyFields } from './connection.svelte';

describe('buildUri', () => {
  it('builds a plain replica-set URI', () => {
    expect(buildUri({ ...emptyFields(), hosts: 'db1:27017,db2:27017', replicaSet: 'rs0' })).toBe(
      'mongodb://db1:27017,db2:27017/?replicaSet=rs0',
    );
  });

  it('escapes credentials and adds authSource and TLS files', () => {
    const uri = buildUri({
      ...emptyFields(),
      hosts: 'db1:27017',
      username: 'al@ce',
      password: 'p:w/d?',
      caFile: '/etc/ssl/ca file.pem',
      certFile: '/home/me/client.pem',
    });
    expect(uri).toBe(
      'mongodb://al%40ce:p%3Aw%2Fd%3F@db1:27017/?authSource=admin&tls=true&tlsCAFile=%2Fetc%2Fssl%2Fca%20file.pem&tlsCertificateKeyFile=%2Fhome%2Fme%2Fclient.pem',
    );
  });

  it('uses mongodb+srv for a seed list', () => {
    expect(buildUri({ ...emptyFields(), hosts: 'cluster0.example.net', srv: true })).toBe(
      'mongodb+srv://cluster0.example.net/',
    );
  });
});

describe('ConnectionState', () => {
  it('is ready only for the connection string it tested', async () => {
    const conn = new ConnectionState(new FakeBackend(), 'source');
    conn.setUri('mongodb://a:1/?replicaSet=rs');
    expect(conn.ready).toBe(false);
    await conn.test();
    expect(conn.ready).toBe(true);
    conn.setUri('mongodb://b:1/?replicaSet=rs');
    expect(conn.ready).toBe(false);
  });

  it('keeps the engine error with its remedy', async () => {
    const backend = new FakeBackend();
    backend.connect = async () => {
      throw fail('unreachable', 'Could not reach the source cluster at a:1: timed out.', 'Check that the cluster is running.');
    };
    const conn = new ConnectionState(backend, 'source');
    conn.setUri('mongodb://a:1');
    await conn.test();
    expect(conn.status).toEqual({
      kind: 'failed',
      error: {
        code: 'unreachable',
        message: 'Could not reach the source cluster at a:1: timed out.',
        remedy: 'Check that the cluster is running.',
      },
    });
  });

  it('refuses an empty connection string without calling the backend', async () => {
    const backend = new FakeBackend();
    const conn = new ConnectionState(backend, 'destination');
    await conn.test();
    expect(conn.status.kind).toBe('failed');
    expect(backend.called('testConnection')).toHaveLength(0);
  });
});
