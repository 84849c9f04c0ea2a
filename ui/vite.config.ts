// Vite + Vitest configuration for the Mongoferry desktop front end.
// The Tauri shell (../src-tauri) loads the dev server in `tauri dev` and the
// built `dist/` in release builds; both are wired in src-tauri/tauri.conf.json.
import { fileURLToPath, URL } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { svelteTesting } from '@testing-library/svelte/vite';
import { defineConfig } from 'vitest/config';

// Must match `build.devUrl` in src-tauri/tauri.conf.json.
const DEV_PORT = 1420;

export default defineConfig({
  plugins: [svelte(), svelteTesting()],
  resolve: {
    alias: {
      $lib: fileURLToPath(new URL('./src/lib', import.meta.url)),
    },
  },
  // Keep Rust compiler output visible when run by `tauri dev`.
  clearScreen: false,
  server: {
    port: DEV_PORT,
    strictPort: true,
    host: '127.0.0.1',
    watch: {
      // The Rust side is rebuilt by the Tauri CLI, not by Vite.
      ignored: ['**/src-tauri/**'],
    },
  },
  envPrefix: ['VITE_', 'TAURI_ENV_'],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Debug builds keep readable output for the WebKit inspector.
    minify: process.env.TAURI_ENV_DEBUG ? false : 'esbuild',
    sourcemap: Boolean(process.env.TAURI_ENV_DEBUG),
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
    restoreMocks: true,
  },
});
