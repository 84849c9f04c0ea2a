// The typed bridge to the Rust shell (src-tauri). This module is the ONLY
// place in the front end that calls `invoke` from @tauri-apps/api: every
// command gets one typed method here, and the rest of the UI imports
// `backend` (tests mock this module instead of Tauri's IPC).
import { invoke, type InvokeArgs } from '@tauri-apps/api/core';
import type { AppInfo } from './types';

export type { AppInfo } from './types';

/** A command failed, or the shell could not be reached. */
export class BackendError extends Error {
  readonly command: string;

  constructor(command: string, message: string) {
    super(message);
    this.name = 'BackendError';
    this.command = command;
  }
}

function describe(error: unknown): string {
  if (typeof error === 'string') return error;
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'message' in error) {
    const { message } = error as { message: unknown };
    if (typeof message === 'string') return message;
  }
  return 'unknown error';
}

async function call<T>(command: string, args?: InvokeArgs): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw new BackendError(command, describe(error));
  }
}

export interface Backend {
  /** Static facts about the running app (engine version). */
  appInfo(): Promise<AppInfo>;
}

export const backend: Backend = {
  appInfo: () => call<AppInfo>('app_info'),
};
