#!/usr/bin/env node
// Runs the Tauri CLI (npm @tauri-apps/cli) for the shell in ../src-tauri.
// The CLI looks for tauri.conf.json only below its working directory, and the
// shell lives beside ui/, not below it; this points the CLI at both folders
// so `npm run tauri -- <command>` works from ui/ on every OS.
//   npm run tauri -- dev
//   npm run tauri -- build --bundles deb
import { fileURLToPath } from 'node:url';
import cli from '@tauri-apps/cli';

process.env.TAURI_APP_PATH ??= fileURLToPath(new URL('../../src-tauri', import.meta.url));
process.env.TAURI_FRONTEND_PATH ??= fileURLToPath(new URL('..', import.meta.url));

try {
  await cli.run(process.argv.slice(2), 'npm run tauri --');
} catch (error) {
  cli.logError(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
