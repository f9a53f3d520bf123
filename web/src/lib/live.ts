// Client-side live state fed by the event stream: the latest status per device (an
// overlay on whatever the tables fetched) and the latest metrics per device.
import { useSyncExternalStore } from 'react';
import { liveStream, type LiveEvent, type StreamState } from './sse';

export interface LiveStatus {
  status: string;
  reason?: string;
  at: number;
}
export interface LiveInterface {
  name: string;
  running?: boolean;
  rx_bps?: number | null;
  tx_bps?: number | null;
  rx_bytes?: number;
  tx_bytes?: number;
}
/** The latest metrics.sample of a device (drover-model MetricsSample). */
export interface LiveMetrics {
  at: string;
  cpu_percent?: number | null;
  memory_percent?: number | null;
  disk_percent?: number | null;
  temperature_c?: number | null;
  uptime_s?: number | null;
  interfaces?: LiveInterface[];
}

const status = new Map<string, LiveStatus>();
const metrics = new Map<string, LiveMetrics>();
let version = 0;
const listeners = new Set<() => void>();
let scheduled = false;

function bump() {
  // Coalesce bursts (a fleet coming online) into one render per frame-ish.
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    version++;
    listeners.forEach((f) => f());
  }, 100);
}

function num(v: unknown): number | null | undefined {
  return typeof v === 'number' ? v : v === null ? null : undefined;
}

liveStream.subscribe((e: LiveEvent) => {
  if (!e.device_id) return;
  const d = e.data;
  if (isStatusEvent(e.type) && typeof d.status === 'string') {
    status.set(e.device_id, {
      status: d.status,
      reason: typeof d.reason === 'string' ? d.reason : undefined,
      at: e.receivedAt,
    });
    bump();
  } else if (isMetricsEvent(e.type)) {
    metrics.set(e.device_id, parseSample(d, e.receivedAt));
    bump();
  }
});

export const isStatusEvent = (t: string) => t === 'device.status' || t === 'device_status';
export const isMetricsEvent = (t: string) => t === 'metrics.sample' || t === 'metrics';

/** A metrics.sample payload in the UI's shape (tolerant of missing fields). */
export function parseSample(d: Record<string, unknown>, receivedAt: number): LiveMetrics {
  const at = typeof d.timestamp === 'string' ? d.timestamp : typeof d.at === 'string' ? d.at : new Date(receivedAt).toISOString();
  return {
    at,
    cpu_percent: num(d.cpu_percent),
    memory_percent: num(d.memory_percent),
    disk_percent: num(d.disk_percent),
    temperature_c: num(d.temperature_c),
    uptime_s: num(d.uptime ?? d.uptime_s),
    interfaces: Array.isArray(d.interfaces) ? (d.interfaces as LiveInterface[]) : undefined,
  };
}

export function clearLive() {
  status.clear();
  metrics.clear();
  bump();
}

function subscribe(f: () => void) {
  listeners.add(f);
  return () => {
    listeners.delete(f);
  };
}

/** Re-renders when any live value changes (throttled); read values with liveStatusOf. */
export function useLiveVersion(): number {
  return useSyncExternalStore(subscribe, () => version);
}
export const liveStatusOf = (id: string) => status.get(id);
export const liveMetricsOf = (id: string) => metrics.get(id);
export const allLiveMetrics = () => metrics;

export function useStreamState(): StreamState {
  return useSyncExternalStore(
    (f) => liveStream.onState(f),
    () => liveStream.state,
  );
}
export function useRecentEvents(): LiveEvent[] {
  return useSyncExternalStore(
    (f) => liveStream.onRecent(f),
    () => liveStream.recent,
  );
}
