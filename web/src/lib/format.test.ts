import { describe, expect, it } from 'vitest';
import { cidrHosts, formatBps, formatBytes, formatPct, formatRelative, formatUptime, isValidEmail, isValidHost } from './format';

describe('format', () => {
  it('bits per second', () => {
    expect(formatBps(0)).toBe('0 bps');
    expect(formatBps(999)).toBe('999 bps');
    expect(formatBps(1500)).toBe('1.5 kbps');
    expect(formatBps(123_456_789)).toBe('123 Mbps');
    expect(formatBps(null)).toBe('—');
  });
  it('bytes', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(undefined)).toBe('—');
  });
  it('percent', () => {
    expect(formatPct(12.345)).toBe('12%');
    expect(formatPct(12.345, 1)).toBe('12.3%');
    expect(formatPct(NaN)).toBe('—');
  });
  it('uptime', () => {
    expect(formatUptime(42)).toBe('42s');
    expect(formatUptime(125)).toBe('2m 5s');
    expect(formatUptime(3 * 3600 + 60)).toBe('3h 1m');
    expect(formatUptime(93784)).toBe('1d 2h 3m');
    expect(formatUptime(-1)).toBe('—');
  });
  it('relative time', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(formatRelative('2026-01-01T11:59:58Z', now)).toBe('just now');
    expect(formatRelative('2026-01-01T11:59:30Z', now)).toBe('30 s ago');
    expect(formatRelative('2026-01-01T11:55:00Z', now)).toBe('5 min ago');
    expect(formatRelative('2026-01-01T09:00:00Z', now)).toBe('3 h ago');
    expect(formatRelative('2025-12-30T12:00:00Z', now)).toBe('2 d ago');
    expect(formatRelative('2026-01-01T12:10:00Z', now)).toBe('in 10 min');
    expect(formatRelative('nonsense', now)).toBe('—');
  });
  it('subnets', () => {
    expect(cidrHosts('10.0.0.0/30')).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(cidrHosts('10.0.0.7/24')).toHaveLength(254);
    expect(cidrHosts('10.0.0.5/32')).toEqual(['10.0.0.5']);
    expect(() => cidrHosts('10.0.0.0/16')).toThrow(/too large/);
    expect(() => cidrHosts('10.0.0/24')).toThrow();
  });
  it('validation', () => {
    expect(isValidHost('192.168.88.1')).toBe(true);
    expect(isValidHost('300.1.1.1')).toBe(false);
    expect(isValidHost('router-1.example.net')).toBe(true);
    expect(isValidHost('bad host')).toBe(false);
    expect(isValidEmail('a@b.co')).toBe(true);
    expect(isValidEmail('a@b')).toBe(false);
  });
});
