// One side's connection: the connection string (pasted, or built from
// the form's fields) and the result of its last test. The test goes
// through the backend; the result is the engine's classified report or
// its error with a remedy.
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { PingReport } from '$lib/bindings/PingReport';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { Side } from '$lib/bindings/Side';

export interface ConnectionFields {
  /** Comma-separated host:port list, or one SRV host name. */
  hosts: string;
  srv: boolean;
  username: string;
  password: string;
  authSource: string;
  replicaSet: string;
  tls: boolean;
  caFile: string;
  certFile: string;
}

export function emptyFields(): ConnectionFields {
  return {
    hosts: '',
    srv: false,
    username: '',
    password: '',
    authSource: 'admin',
    replicaSet: '',
    tls: false,
    caFile: '',
    certFile: '',
  };
}

/** Builds a connection string from the form's fields, escaping each part. */
export function buildUri(f: ConnectionFields): string {
  const scheme = f.srv ? 'mongodb+srv' : 'mongodb';
  const user = f.username.trim();
  const auth = user
    ? `${encodeURIComponent(user)}${f.password ? `:${encodeURIComponent(f.password)}` : ''}@`
    : '';
  const options: string[] = [];
  if (user && f.authSource.trim()) options.push(`authSource=${encodeURIComponent(f.authSource.trim())}`);
  if (f.replicaSet.trim()) options.push(`replicaSet=${encodeURIComponent(f.replicaSet.trim())}`);
  if (f.tls || f.caFile || f.certFile) options.push('tls=true');
  if (f.caFile) options.push(`tlsCAFile=${encodeURIComponent(f.caFile)}`);
  if (f.certFile) options.push(`tlsCertificateKeyFile=${encodeURIComponent(f.certFile)}`);
  const query = options.length ? `?${options.join('&')}` : '';
  return `${scheme}://${auth}${f.hosts.trim()}/${query}`;
}

export type TestStatus =
  | { kind: 'idle' }
  | { kind: 'testing' }
  | { kind: 'ok'; report: PingReport; uri: string }
  | { kind: 'failed'; error: ErrorInfo };

export class ConnectionState {
  readonly side: Side;
  mode: 'uri' | 'fields' = $state('uri');
  uri = $state('');
  fields: ConnectionFields = $state(emptyFields());
  status: TestStatus = $state({ kind: 'idle' });
  /** The saved profile the connection string was taken from, and that string. */
  private fromProfile: { name: string; uri: string } | null = $state(null);

  constructor(
    private readonly backend: Backend,
    side: Side,
  ) {
    this.side = side;
  }

  /** The connection string the migration will use. */
  get effectiveUri(): string {
    return this.mode === 'uri' ? this.uri.trim() : buildUri(this.fields);
  }

  /** Whether the current connection string has passed a test. */
  get ready(): boolean {
    return this.status.kind === 'ok' && this.status.uri === this.effectiveUri;
  }

  setUri(uri: string): void {
    this.mode = 'uri';
    this.uri = uri;
  }

  /** Fills the connection string from a saved profile (its redacted form), remembering which. */
  setFromProfile(name: string, uri: string): void {
    this.setUri(uri);
    this.fromProfile = { name, uri };
  }

  /** The profile's name while the connection string is still the profile's. */
  get profileName(): string | null {
    return this.fromProfile && this.fromProfile.uri === this.effectiveUri ? this.fromProfile.name : null;
  }

  async test(): Promise<void> {
    const uri = this.effectiveUri;
    if (!uri) {
      this.status = {
        kind: 'failed',
        error: {
          code: 'invalid_uri',
          message: `The ${this.side} connection string is empty.`,
          remedy: 'Paste a connection string such as mongodb://host:27017/?replicaSet=rs0, or fill in the hosts.',
        },
      };
      return;
    }
    this.status = { kind: 'testing' };
    try {
      const report = await this.backend.testConnection({ side: this.side, uri, profile: this.profileName });
      this.status = { kind: 'ok', report, uri };
    } catch (error) {
      this.status = { kind: 'failed', error: toErrorInfo(error) };
    }
  }
}
