import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { FakeBackend, fail } from '$lib/backend/fake';
import { MigrationLogState } from '$lib/state/log.svelte';
import LogAction from './LogAction.svelte';

const PATH = '/home/dba/.local/share/mongoferry/logs/m-1.log';

async function renderAction(path: string | null = PATH) {
  const backend = new FakeBackend();
  backend.logPath = path;
  const log = new MigrationLogState(backend);
  await log.refresh();
  render(LogAction, { log });
  return { backend, log };
}

describe('LogAction', () => {
  it('shows where the log is and opens it through the shell', async () => {
    const { backend } = await renderAction();
    expect(screen.getByTestId('log-path').textContent).toBe(PATH);
    await fireEvent.click(screen.getByRole('button', { name: 'Open the log' }));
    expect(backend.called('openMigrationLog')).toEqual([[]]);
    expect(screen.queryByTestId('log-error')).toBeNull();
  });

  it('is not offered while the migration has no log', async () => {
    const { backend } = await renderAction(null);
    expect(backend.called('migrationLog')).toEqual([[]]);
    expect(screen.queryByTestId('open-log')).toBeNull();
  });

  it('says why the log could not be opened, and what to do', async () => {
    const backend = new FakeBackend();
    backend.logPath = PATH;
    backend.openLog = async () => {
      throw fail('open_failed', `The log ${PATH} could not be opened: no viewer.`, 'Open the file from a file manager or a terminal instead.');
    };
    const log = new MigrationLogState(backend);
    await log.refresh();
    render(LogAction, { log });
    await fireEvent.click(screen.getByTestId('open-log'));
    const notice = await screen.findByTestId('log-error');
    expect(notice.getAttribute('data-code')).toBe('open_failed');
    expect(notice.textContent).toContain('Open the file from a file manager or a terminal instead.');
    // The path stays, for a terminal.
    await waitFor(() => expect(screen.getByTestId('log-path').textContent).toBe(PATH));
  });

  it('hides the action when the shell cannot say where the log is', async () => {
    const backend = new FakeBackend();
    backend.migrationLog = async () => {
      throw fail('ipc_failed', 'The back end did not answer.', 'Restart Mongoferry.');
    };
    const log = new MigrationLogState(backend);
    await log.refresh();
    render(LogAction, { log });
    expect(log.path).toBeNull();
    expect(screen.queryByTestId('open-log')).toBeNull();
  });
});
