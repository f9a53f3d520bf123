// Client-side live state fed by the event stream: the latest status per device (an
// overlay on whatever the tables fetched) and the latest metrics per device.
import { useSyncExternalStore } from 'react';
import { liveStream, type LiveEvent, type StreamState } from './sse';

export interface LiveStatus {
  status: string;
  reason?: string;
  at: number;
}
export interface LiveMetrics {
  at: string;
  cpu_load?: number | null;
  memory_used_pct?: number | null;
  disk_used_pct?: number | null;
  temperature_c?: number | null;
  uptime_s?: number | null;
  interfaces?: { name: string; rx_bps?: number | null; tx_bps?: number | null }[];
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
  if (e.type === 'device_status' && typeof e.data.status === 'string') {
    status.set(e.device_id, {
      status: e.data.status,
      reason: typeof e.data.reason === 'string' ? e.data.reason : undefined,
      at: e.receivedAt,
    });
    bump();
  } else if (e.type === 'metrics') {
    const d = e.data;
    metrics.set(e.device_id, {
      at: typeof d.at === 'string' ? d.at : new Date(e.receivedAt).toISOString(),
      cpu_load: num(d.cpu_load),
      memory_used_pct: num(d.memory_used_pct),
      disk_used_pct: num(d.disk_used_pct),
      temperature_c: num(d.temperature_c),
      uptime_s: num(d.uptime_s),
      interfaces: Array.isArray(d.interfaces) ? (d.interfaces as LiveMetrics['interfaces']) : undefined,
    });
    bump();
  }
});

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
