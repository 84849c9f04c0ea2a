// The running migration's log as the UI offers it: where the shell writes
// it (one file per migration, JSON lines) and an action that opens it with
// the system's viewer. The shell owns the file; the UI only shows the path
// and asks for it to be opened.
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';

export class MigrationLogState {
  /** The log's path; null before a migration starts, or when it has none. */
  path: string | null = $state(null);
  /** Why the log could not be opened, the last time it was asked. */
  error: ErrorInfo | null = $state(null);
  opening = $state(false);

  constructor(private readonly backend: Backend) {}

  /** Asks the shell where the current migration's log is. */
  async refresh(): Promise<void> {
    try {
      this.path = await this.backend.migrationLog();
    } catch {
      // Only the path is missing: the migration runs on, and the action
      // stays hidden rather than showing an error nobody asked for.
      this.path = null;
    }
  }

  async open(): Promise<void> {
    this.error = null;
    this.opening = true;
    try {
      await this.backend.openMigrationLog();
    } catch (error) {
      this.error = toErrorInfo(error);
    } finally {
      this.opening = false;
    }
  }
}
