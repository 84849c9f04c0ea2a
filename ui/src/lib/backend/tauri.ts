// The Backend over Tauri IPC: one typed method per Rust command. Errors
// arrive as ErrorInfo ({code, message, remedy}) and are rethrown as
// BackendError, so callers never see raw IPC failures.
import { Channel, invoke, type InvokeArgs } from '@tauri-apps/api/core';
import { open, save } from '@tauri-apps/plugin-dialog';
import type { Event } from '$lib/bindings/Event';
import type { InstallProgress } from '$lib/bindings/InstallProgress';
import type { VerifyProgress } from '$lib/bindings/VerifyProgress';
import { BackendError, toErrorInfo, type Backend } from './index';

async function call<T>(command: string, args?: InvokeArgs): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw new BackendError(toErrorInfo(error));
  }
}

export const tauriBackend: Backend = {
  appInfo: () => call('app_info'),
  testConnection: (request) => call('test_connection', { request }),
  preflightCheck: (request) => call('preflight_check', { request }),
  listProfiles: () => call('list_profiles'),
  saveProfile: (request) => call('save_profile', { request }),
  scopeTree: (request) => call('scope_tree', { request }),
  startSync: (request) => call('start_sync', { request }),
  watchMigration: (onEvent) => {
    const onEventChannel = new Channel<Event>();
    onEventChannel.onmessage = onEvent;
    return call('watch_migration', { onEvent: onEventChannel });
  },
  pauseMigration: () => call('pause_migration'),
  resumeMigration: () => call('resume_migration'),
  setLoad: (request) => call('set_load', { request }),
  commitMigration: (request) => call('commit_migration', { request }),
  reverseMigration: () => call('reverse_migration'),
  findResumable: () => call('find_resumable'),
  resumeRemembered: () => call('resume_remembered'),
  forgetRemembered: () => call('forget_remembered'),
  startSandbox: () => call('start_sandbox'),
  stopSandboxLoad: () => call('stop_sandbox_load'),
  mongodOffer: () => call('mongod_offer'),
  installMongod: (onProgress) => {
    const channel = new Channel<InstallProgress>();
    channel.onmessage = onProgress;
    return call('install_mongod', { onProgress: channel });
  },
  runVerification: (mode, onProgress) => {
    const channel = new Channel<VerifyProgress>();
    channel.onmessage = onProgress;
    return call('run_verification', { request: { mode }, onProgress: channel });
  },
  cancelVerification: () => call('cancel_verification'),
  documentPair: (request) => call('document_pair', { request }),
  exportVerification: (path) => call('export_verification', { request: { path } }),
  migrationLog: () => call('migration_log'),
  openMigrationLog: () => call('open_migration_log'),
  pickSavePath: async (title, defaultName) => {
    const picked = await save({ title, defaultPath: defaultName, filters: [{ name: 'JSON', extensions: ['json'] }] });
    return picked ?? null;
  },
  pickFile: async (title) => {
    const picked = await open({ title, multiple: false, directory: false });
    return typeof picked === 'string' ? picked : null;
  },
};
