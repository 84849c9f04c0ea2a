// Reactive state for the app's static facts, loaded once from the backend.
// State modules own loading and error handling; views only render them.
import { backend, type AppInfo } from '$lib/backend';

export type Loadable<T> =
  | { status: 'loading' }
  | { status: 'ready'; value: T }
  | { status: 'failed'; message: string };

export class AppInfoState {
  current: Loadable<AppInfo> = $state({ status: 'loading' });

  async load(): Promise<void> {
    this.current = { status: 'loading' };
    try {
      this.current = { status: 'ready', value: await backend.appInfo() };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.current = { status: 'failed', message };
    }
  }
}
