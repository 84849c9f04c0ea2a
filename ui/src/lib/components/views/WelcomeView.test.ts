import { render, screen } from '@testing-library/svelte';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { backend, BackendError } from '$lib/backend';
import WelcomeView from './WelcomeView.svelte';

// The view must reach the Rust shell only through $lib/backend; mocking that
// module is the whole IPC surface the component sees.
vi.mock('$lib/backend', async (importOriginal) => {
  const actual = await importOriginal<typeof import('$lib/backend')>();
  return { ...actual, backend: { appInfo: vi.fn() } };
});

const appInfo = vi.mocked(backend.appInfo);

describe('WelcomeView', () => {
  beforeEach(() => {
    appInfo.mockReset();
  });

  it('shows the product name and the version from the backend', async () => {
    appInfo.mockResolvedValue({ version: '9.8.7-test' });

    render(WelcomeView);

    expect(screen.getByRole('heading', { level: 1, name: 'Mongoferry' })).toBeTruthy();
    expect(await screen.findByText('Version 9.8.7-test')).toBeTruthy();
    expect(appInfo).toHaveBeenCalledTimes(1);
  });

  it('shows the backend error when the version cannot be read', async () => {
    appInfo.mockRejectedValue(new BackendError('app_info', 'shell unavailable'));

    render(WelcomeView);

    expect(await screen.findByText(/Could not read the app version: shell unavailable/)).toBeTruthy();
  });
});
