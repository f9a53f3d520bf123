// Live events: one stream per tenant, read with fetch so each (re)connect can carry a
// fresh single-use ticket in the URL and Last-Event-ID as a header. Reconnects with
// backoff; a silent stream (no event or heartbeat comment for 45 s) counts as lost.
import { post } from '../api/client';
import { SseParser, backoffDelay } from './sseParser';

// Event names are drover's subject families: device.status, metrics.sample, config.change,
// config.push, firmware.progress, alert.fired, alert.resolved; and `error` from the server
// itself ({reason}) when this client fell behind or its Last-Event-ID is too old.
export type LiveEventType =
  | 'device.status'
  | 'metrics.sample'
  | 'config.change'
  | 'config.push'
  | 'firmware.progress'
  | 'alert.fired'
  | 'alert.resolved';

export interface LiveEvent {
  type: LiveEventType | string;
  id?: string;
  device_id?: string;
  data: Record<string, unknown>;
  receivedAt: number;
}

export type StreamState =
  | { kind: 'idle' }
  | { kind: 'connecting'; attempt: number }
  | { kind: 'open'; since: number }
  | { kind: 'reconnecting'; attempt: number; retryAt: number; reason: string };

type Handler = (e: LiveEvent) => void;

const SILENCE_MS = 45_000;

export class LiveStream {
  private tenantId: string | null = null;
  private ctrl: AbortController | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private watchdog: ReturnType<typeof setInterval> | null = null;
  private lastByte = 0;
  private attempt = 0;
  private lastEventId: string | undefined;
  private handlers = new Set<Handler>();
  private stateListeners = new Set<() => void>();
  state: StreamState = { kind: 'idle' };
  /** Told when the server sends an `error` event (the UI refetches: events may be lost). */
  onServerError?: (reason: string) => void;
  /** The most recent events, newest first, for "recent events" panels. */
  recent: LiveEvent[] = [];
  private recentListeners = new Set<() => void>();

  subscribe(fn: Handler) {
    this.handlers.add(fn);
    return () => {
      this.handlers.delete(fn);
    };
  }
  onState(fn: () => void) {
    this.stateListeners.add(fn);
    return () => {
      this.stateListeners.delete(fn);
    };
  }
  onRecent(fn: () => void) {
    this.recentListeners.add(fn);
    return () => {
      this.recentListeners.delete(fn);
    };
  }
  private setState(s: StreamState) {
    this.state = s;
    this.stateListeners.forEach((f) => f());
  }

  start(tenantId: string) {
    if (this.tenantId === tenantId && this.state.kind !== 'idle') return;
    this.stop();
    this.tenantId = tenantId;
    this.lastEventId = undefined;
    this.recent = [];
    this.recentListeners.forEach((f) => f());
    this.attempt = 0;
    this.connect();
    this.watchdog = setInterval(() => {
      if (this.state.kind === 'open' && Date.now() - this.lastByte > SILENCE_MS) this.ctrl?.abort('silent');
    }, 5000);
  }

  stop() {
    this.tenantId = null;
    this.ctrl?.abort('stop');
    this.ctrl = null;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    this.timer = null;
    this.watchdog = null;
    this.setState({ kind: 'idle' });
  }

  /** Skip the wait (the "retry now" button, or the browser going back online). */
  retryNow() {
    if (this.state.kind === 'reconnecting' && this.tenantId) {
      if (this.timer) clearTimeout(this.timer);
      this.connect();
    }
  }

  private async connect() {
    const tenantId = this.tenantId;
    if (!tenantId) return;
    this.setState({ kind: 'connecting', attempt: this.attempt });
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    try {
      const { ticket } = await post<{ ticket: string; expires_in: number }>('/auth/sse-ticket', { tenant_id: tenantId });
      const headers: Record<string, string> = { Accept: 'text/event-stream' };
      if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
      const url = `/api/sse/subscribe?tenant_id=${encodeURIComponent(tenantId)}&ticket=${encodeURIComponent(ticket)}`;
      const r = await fetch(url, { headers, credentials: 'same-origin', signal: ctrl.signal, cache: 'no-store' });
      if (!r.ok || !r.body) throw new Error(`stream refused: HTTP ${r.status}`);
      this.attempt = 0;
      this.lastByte = Date.now();
      this.setState({ kind: 'open', since: Date.now() });
      const parser = new SseParser();
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.lastByte = Date.now();
        for (const m of parser.push(value)) {
          if (m.id) this.lastEventId = m.id;
          this.dispatch(m.event, m.data, m.id);
        }
      }
      throw new Error('stream ended');
    } catch (e) {
      if (ctrl.signal.aborted && ctrl.signal.reason === 'stop') return;
      if (this.tenantId !== tenantId) return;
      const delay = backoffDelay(this.attempt);
      this.attempt++;
      const reason = ctrl.signal.aborted ? 'no heartbeat' : (e as Error).message || 'connection lost';
      this.setState({ kind: 'reconnecting', attempt: this.attempt, retryAt: Date.now() + delay, reason });
      this.timer = setTimeout(() => this.connect(), delay);
    }
  }

  private dispatch(type: string, raw: string, id?: string) {
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    if (type === 'error') {
      // The server ends the stream after this (slow_client, or a Last-Event-ID it can no
      // longer replay): start over without resuming in the second case.
      const reason = typeof data.reason === 'string' ? data.reason : 'server error';
      if (/Last-Event-ID/i.test(reason)) this.lastEventId = undefined;
      this.onServerError?.(reason);
      return;
    }
    const ev: LiveEvent = {
      type,
      id,
      device_id: typeof data.device_id === 'string' ? data.device_id : undefined,
      data,
      receivedAt: Date.now(),
    };
    this.handlers.forEach((h) => h(ev));
    if (type !== 'metrics.sample' && type !== 'metrics') {
      this.recent = [ev, ...this.recent].slice(0, 200);
      this.recentListeners.forEach((f) => f());
    }
  }

  /** Test and demo hook: inject an event as if it came from the server. */
  inject(type: string, data: Record<string, unknown>) {
    this.dispatch(type, JSON.stringify(data));
  }
}

export const liveStream = new LiveStream();
