import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveStream, type LiveEvent } from './sse';

// A fake server: each subscribe call gets a stream the test writes to and can cut.
interface Conn {
  url: string;
  headers: Record<string, string>;
  push: (s: string) => void;
  cut: () => void;
}
let conns: Conn[];
let tickets: number;

beforeEach(() => {
  vi.useFakeTimers();
  conns = [];
  tickets = 0;
  vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
    if (url === '/api/auth/sse-ticket') return new Response(JSON.stringify({ ticket: `t${++tickets}`, expires_in: 30 }), { status: 200 });
    let ctrl!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctrl = c) });
    const enc = new TextEncoder();
    init.signal?.addEventListener('abort', () => ctrl.error(new DOMException('aborted', 'AbortError')));
    conns.push({ url, headers: init.headers as Record<string, string>, push: (s) => ctrl.enqueue(enc.encode(s)), cut: () => ctrl.close() });
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  });
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

const flush = async () => {
  for (let i = 0; i < 10; i++) await vi.advanceTimersByTimeAsync(0);
};

describe('LiveStream', () => {
  it('delivers events, reconnects with a new ticket and Last-Event-ID after a cut, with backoff', async () => {
    const s = new LiveStream();
    const got: LiveEvent[] = [];
    s.subscribe((e) => got.push(e));
    s.start('ten1');
    await flush();
    expect(conns).toHaveLength(1);
    expect(conns[0].url).toBe('/api/sse/subscribe?tenant_id=ten1&ticket=t1');
    expect(s.state.kind).toBe('open');
    conns[0].push('id: 5\nevent: device_status\ndata: {"device_id":"d1","status":"online"}\n\n');
    await flush();
    expect(got.map((e) => [e.type, e.device_id, e.id])).toEqual([['device_status', 'd1', '5']]);
    expect(s.recent).toHaveLength(1);

    conns[0].cut();
    await flush();
    expect(s.state.kind).toBe('reconnecting');
    const wait = (s.state as { retryAt: number }).retryAt - Date.now();
    expect(wait).toBeGreaterThanOrEqual(500);
    expect(wait).toBeLessThanOrEqual(1000);
    await vi.advanceTimersByTimeAsync(wait);
    await flush();
    expect(conns).toHaveLength(2);
    expect(conns[1].url).toContain('ticket=t2');
    expect(conns[1].headers['Last-Event-ID']).toBe('5');
    expect(s.state.kind).toBe('open');
    s.stop();
  });

  it('treats a silent stream as lost and stops cleanly', async () => {
    const s = new LiveStream();
    s.start('ten1');
    await flush();
    conns[0].push(': heartbeat\n\n');
    await vi.advanceTimersByTimeAsync(30_000);
    expect(s.state.kind).toBe('open');
    await vi.advanceTimersByTimeAsync(20_000); // 50 s of silence: the 5 s watchdog fires now
    await flush();
    expect(s.state.kind).toBe('reconnecting');
    expect((s.state as { reason: string }).reason).toBe('no heartbeat');
    s.stop();
    expect(s.state.kind).toBe('idle');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(conns).toHaveLength(1);
  });
});
