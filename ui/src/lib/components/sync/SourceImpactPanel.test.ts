import { render, screen } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { sourceImpact } from '$lib/backend/fake';
import SourceImpactPanel from './SourceImpactPanel.svelte';

describe('SourceImpactPanel', () => {
  it('says nothing is measured yet, and why, without NaN or undefined', () => {
    render(SourceImpactPanel, {
      impact: sourceImpact({ notMeasured: ['Read tickets: the source is older than 7.0 and reports none.'] }),
    });
    const panel = screen.getByTestId('source-impact');
    expect(panel.textContent).toContain('No figures yet.');
    expect(screen.getByTestId('impact-not-measured').textContent).toContain('reports none');
    expect(panel.textContent).not.toMatch(/NaN|undefined|null/);
  });

  it('shows each figure it has, now against idle', () => {
    render(SourceImpactPanel, {
      impact: sourceImpact({
        readLatencyMs: { p50: 1.2, p90: 3.4, p99: 12 },
        idleReadLatencyMs: { p50: 0.8, p90: 2.5, p99: 6 },
        readLatencyIncreasePercent: 36,
        cacheUsedPercent: 78,
        cacheDirtyPercent: Number.NaN,
        secondaryLagSeconds: 2.5,
        laggingMember: 'db3:27017',
        oplogHeadroomSeconds: 7200 + 300,
      }),
    });
    const latency = screen.getByTestId('impact-read-latency');
    const cells = [...latency.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((c) => c.textContent));
    expect(cells).toEqual([
      ['now', '1.2 ms', '3.4 ms', '12 ms'],
      ['idle', '0.80 ms', '2.5 ms', '6.0 ms'],
    ]);
    expect(latency.textContent).toContain('+36% on idle');
    expect(screen.getByTestId('impact-cache').textContent).toContain('78% used · — dirty');
    expect(screen.getByTestId('impact-secondary-lag').textContent).toContain('db3:27017');
    expect(screen.getByTestId('impact-oplog-headroom').textContent).toContain('2 h 5 min');
    expect(screen.queryByTestId('impact-queued')).toBeNull();
    expect(screen.queryByTestId('impact-not-measured')).toBeNull();
    expect(screen.getByTestId('source-impact').textContent).not.toMatch(/NaN|undefined/);
  });
});
