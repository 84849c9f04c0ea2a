// The compatibility step: the engine's preflight report of both clusters,
// grouped by severity. Any blocker stops the wizard here.
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { EventSourceChoice } from '$lib/bindings/EventSourceChoice';
import type { Finding } from '$lib/bindings/Finding';
import type { PreflightRequest } from '$lib/bindings/PreflightRequest';
import type { Report } from '$lib/bindings/Report';
import type { Severity } from '$lib/bindings/Severity';

export type PreflightStatus =
  | { kind: 'idle' }
  | { kind: 'checking' }
  | { kind: 'done'; report: Report }
  | { kind: 'failed'; error: ErrorInfo };

export const SEVERITIES: readonly Severity[] = ['blocker', 'warning', 'info'];

export class PreflightState {
  status: PreflightStatus = $state({ kind: 'idle' });
  /** The event source the current report was checked for. */
  checkedEventSource: EventSourceChoice | null = $state(null);
  /** Whether the current report was checked for a migration that keeps a way back. */
  checkedReversible: boolean | null = $state(null);
  private checkedFor = '';

  constructor(private readonly backend: Backend) {}

  get report(): Report | null {
    return this.status.kind === 'done' ? this.status.report : null;
  }

  /** Whether the check has run and found nothing that blocks. */
  get passed(): boolean {
    return this.report !== null && !this.report.findings.some((f) => f.severity === 'blocker');
  }

  group(severity: Severity): Finding[] {
    return this.report?.findings.filter((f) => f.severity === severity) ?? [];
  }

  /** Runs the check, unless it already ran for the same request. */
  async run(request: PreflightRequest, force = false): Promise<void> {
    const key = JSON.stringify(request);
    if (!force && key === this.checkedFor && this.status.kind === 'done') return;
    this.status = { kind: 'checking' };
    try {
      const report = await this.backend.preflightCheck(request);
      this.checkedFor = key;
      this.checkedEventSource = request.eventSource;
      this.checkedReversible = request.reversible;
      this.status = { kind: 'done', report };
    } catch (error) {
      this.status = { kind: 'failed', error: toErrorInfo(error) };
    }
  }
}
