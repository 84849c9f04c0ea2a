import { describe, expect, it } from 'vitest';
import { formatBytes, formatCount, formatDuration, formatLag, percent } from './format';

describe('format', () => {
  it('formats sizes, counts, durations and percentages', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(5 * 1024 * 1024 * 1024)).toBe('5.0 GB');
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatDuration(45)).toBe('45 s');
    expect(formatDuration(200)).toBe('3 min 20 s');
    expect(formatDuration(7500)).toBe('2 h 5 min');
    expect(formatDuration(null)).toBe('unknown');
    expect(formatLag(0.42)).toBe('0.4 s');
    expect(formatLag(75)).toBe('1 min 15 s');
    expect(percent(1, 4)).toBe(25);
    expect(percent(5, 0)).toBe(0);
  });
});
