import { render, screen } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import LineChart from './LineChart.svelte';

describe('LineChart', () => {
  it('draws known points, skips gaps and shows the latest value', () => {
    const { container } = render(LineChart, { title: 'Lag', unit: 's', values: [null, 4, 2, 0.5], testid: 'c' });
    const points = container.querySelector('polyline')?.getAttribute('points')?.split(' ') ?? [];
    expect(points).toHaveLength(3);
    expect(screen.getByTestId('c').textContent).toContain('0.5 s');
    expect(screen.getByRole('img').getAttribute('aria-label')).toContain('peak 4.0 s');
  });

  it('shows a dash before anything is measured', () => {
    render(LineChart, { title: 'Lag', unit: 's', values: [null], testid: 'c' });
    expect(screen.getByTestId('c').textContent).toContain('—');
  });
});
