import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { api, ApiError, buildUrl, onSessionExpired, onReachability } from './client';

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;
let handler: Handler;
const calls: string[] = [];

beforeEach(() => {
  calls.length = 0;
  vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
    calls.push(`${init?.method ?? 'GET'} ${url}`);
    return handler(url, init);
  });
});
afterEach(() => vi.unstubAllGlobals());

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

describe('api client', () => {
  it('builds query strings without empty values', () => {
    expect(buildUrl('/x', { a: 1, b: '', c: undefined, d: null, e: 'y z' })).toBe('/api/x?a=1&e=y+z');
  });

  it('parses the error body into an ApiError', async () => {
    handler = () => json(403, { code: 'forbidden', message: 'Viewers cannot run commands', request_id: 'r1' });
    const e = (await api('/x').catch((x) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect([e.status, e.code, e.message, e.requestId]).toEqual([403, 'forbidden', 'Viewers cannot run commands', 'r1']);
  });

  it('reports Retry-After on 429', async () => {
    handler = () => json(429, {}, { 'Retry-After': '7' });
    const e = (await api('/x').catch((x) => x)) as ApiError;
    expect(e.retryAfter).toBe(7);
    expect(e.message).toBe('Too many requests (try again in 7 s)');
  });

  it('refreshes once on 401 and retries; concurrent 401s share one refresh', async () => {
    let refreshed = false;
    handler = (url) => {
      if (url === '/api/auth/refresh') {
        refreshed = true;
        return new Response(null, { status: 204 });
      }
      return refreshed ? json(200, { ok: url }) : json(401, { code: 'token_expired', message: 'expired' });
    };
    const [a, b] = await Promise.all([api<{ ok: string }>('/a'), api<{ ok: string }>('/b')]);
    expect(a.ok).toBe('/api/a');
    expect(b.ok).toBe('/api/b');
    expect(calls.filter((c) => c.includes('refresh'))).toHaveLength(1);
  });

  it('signals session expiry when the refresh fails', async () => {
    handler = (url) => (url === '/api/auth/refresh' ? json(401, { code: 'unauthenticated', message: 'no' }) : json(401, { code: 'token_expired', message: 'x' }));
    const fn = vi.fn();
    const off = onSessionExpired(fn);
    await expect(api('/z')).rejects.toMatchObject({ status: 401 });
    off();
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('does not refresh for sign-in calls', async () => {
    handler = () => json(401, { code: 'unauthenticated', message: 'Invalid credentials' });
    await expect(api('/auth/srp/verify', { method: 'POST', body: {}, noAuthRetry: true })).rejects.toMatchObject({ message: 'Invalid credentials' });
    expect(calls).toEqual(['POST /api/auth/srp/verify']);
  });

  it('turns a network failure into an "unreachable" error and reports reachability', async () => {
    const seen: boolean[] = [];
    const off = onReachability((ok) => seen.push(ok));
    handler = () => Promise.reject(new TypeError('Failed to fetch'));
    const e = (await api('/x').catch((x) => x)) as ApiError;
    expect([e.status, e.code, e.unreachable]).toEqual([0, 'unreachable', true]);
    handler = () => json(200, {});
    await api('/x');
    off();
    expect(seen).toEqual([false, true]);
  });
});
