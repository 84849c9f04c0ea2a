// The validate step: a quick or full verification of the destination
// against the source, its progress (pushed), the result, the table of
// differences, a side-by-side view of one document, and the export.
import type { Backend } from '$lib/backend';
import { toErrorInfo } from '$lib/backend';
import type { Difference } from '$lib/bindings/Difference';
import type { DocumentPair } from '$lib/bindings/DocumentPair';
import type { ErrorInfo } from '$lib/bindings/ErrorInfo';
import type { VerificationOutcome } from '$lib/bindings/VerificationOutcome';
import type { VerifyMode } from '$lib/bindings/VerifyMode';
import type { VerifyProgress } from '$lib/bindings/VerifyProgress';

export type ValidateStatus =
  | { kind: 'idle' }
  | { kind: 'running'; mode: VerifyMode; progress: VerifyProgress | null }
  | { kind: 'done'; outcome: VerificationOutcome }
  | { kind: 'failed'; error: ErrorInfo };

export type Selected =
  | { kind: 'none' }
  | { kind: 'loading'; difference: Difference }
  | { kind: 'shown'; difference: Difference; pair: DocumentPair }
  | { kind: 'failed'; difference: Difference; error: ErrorInfo };

export class ValidateState {
  status: ValidateStatus = $state({ kind: 'idle' });
  selected: Selected = $state({ kind: 'none' });
  exported: string | null = $state(null);
  exportError: ErrorInfo | null = $state(null);

  constructor(private readonly backend: Backend) {}

  get outcome(): VerificationOutcome | null {
    return this.status.kind === 'done' ? this.status.outcome : null;
  }

  /** Forgets the last result: a reverse's commit is verified anew. */
  reset(): void {
    this.status = { kind: 'idle' };
    this.selected = { kind: 'none' };
    this.exported = null;
    this.exportError = null;
  }

  async run(mode: VerifyMode): Promise<void> {
    this.status = { kind: 'running', mode, progress: null };
    this.selected = { kind: 'none' };
    this.exported = null;
    try {
      const outcome = await this.backend.runVerification(mode, (progress) => {
        if (this.status.kind === 'running') this.status = { kind: 'running', mode, progress };
      });
      this.status = { kind: 'done', outcome };
    } catch (error) {
      this.status = { kind: 'failed', error: toErrorInfo(error) };
    }
  }

  cancel(): Promise<void> {
    return this.backend.cancelVerification();
  }

  /** Loads both sides of a document-level difference. */
  async show(difference: Difference): Promise<void> {
    if (difference.id === undefined || difference.id === null) return;
    this.selected = { kind: 'loading', difference };
    try {
      const pair = await this.backend.documentPair({ namespace: difference.namespace, id: difference.id });
      this.selected = { kind: 'shown', difference, pair };
    } catch (error) {
      this.selected = { kind: 'failed', difference, error: toErrorInfo(error) };
    }
  }

  async exportReport(): Promise<void> {
    this.exportError = null;
    const path = await this.backend.pickSavePath('Save the verification report', 'mongoferry-verification.json');
    if (!path) return;
    try {
      await this.backend.exportVerification(path);
      this.exported = path;
    } catch (error) {
      this.exportError = toErrorInfo(error);
    }
  }
}

/** A difference's `_id` for display (relaxed extended JSON where simple). */
export function idText(d: Difference): string {
  return d.id == null ? '—' : JSON.stringify(d.id);
}
