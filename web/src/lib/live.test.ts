import { describe, expect, it } from 'vitest';
import { isMetricsEvent, isStatusEvent, liveMetricsOf, liveStatusOf, parseSample } from './live';
import { LiveStream, liveStream } from './sse';
import { formatSecretKey, generateSecretKey, parseSecretKey } from './crypto/secretKey';
import { bytesToHex } from './crypto/bytes';

describe('live state', () => {
  it('reads drover-model MetricsSample payloads', () => {
    const m = parseSample(
      { device_id: 'd', timestamp: '2026-01-01T00:00:00Z', cpu_percent: 12.5, memory_percent: 40, disk_percent: null, uptime: 99, interfaces: [{ name: 'ether1', running: true, rx_bps: 10, tx_bps: 20 }] },
      0,
    );
    expect(m).toMatchObject({ at: '2026-01-01T00:00:00Z', cpu_percent: 12.5, memory_percent: 40, disk_percent: null, uptime_s: 99 });
    expect(m.interfaces?.[0].name).toBe('ether1');
    expect(parseSample({}, Date.parse('2026-01-01T00:00:01Z')).at).toBe('2026-01-01T00:00:01.000Z');
  });
  it('knows the event families', () => {
    expect(isStatusEvent('device.status')).toBe(true);
    expect(isMetricsEvent('metrics.sample')).toBe(true);
    expect(isMetricsEvent('device.status')).toBe(false);
  });
  it('keeps the latest status and metrics per device from the stream', () => {
    liveStream.inject('device.status', { device_id: 'dev-1', status: 'offline', reason: 'timeout' });
    liveStream.inject('metrics.sample', { device_id: 'dev-1', timestamp: '2026-01-01T00:00:00Z', cpu_percent: 7 });
    expect(liveStatusOf('dev-1')).toMatchObject({ status: 'offline', reason: 'timeout' });
    expect(liveMetricsOf('dev-1')?.cpu_percent).toBe(7);
    // metrics samples are not "events" for the recent-events lists
    expect(liveStream.recent.map((e) => e.type)).toEqual(['device.status']);
  });
  it('a server error event about an old Last-Event-ID drops the resume point', () => {
    const s = new LiveStream();
    const reasons: string[] = [];
    s.onServerError = (r) => reasons.push(r);
    s.inject('error', { reason: 'events since Last-Event-ID are no longer available; reload' });
    expect(reasons).toHaveLength(1);
  });
});

describe('secret keys', () => {
  it('round-trips random keys through the text form', () => {
    for (let i = 0; i < 200; i++) {
      const k = generateSecretKey();
      const text = formatSecretKey(k);
      expect(text).toMatch(/^A3-[A-Z2-9]{6}-[A-Z2-9]{6}-[A-Z2-9]{6}-[A-Z2-9]{6}-[A-Z2-9]{3}$/);
      expect(bytesToHex(parseSecretKey(text))).toBe(bytesToHex(k));
    }
  });
});
