// fetch wrapper: same-origin cookies, JSON, typed errors, one shared refresh on 401,
// and a session-expired signal the router turns into "back to login, then here".

import type { ApiErrorBody } from './types';

export class ApiError extends Error {
  status: number;
  code: string;
  requestId?: string;
  retryAfter?: number;
  constructor(status: number, body: Partial<ApiErrorBody>, retryAfter?: number) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || (status === 0 ? 'unreachable' : `http_${status}`);
    this.requestId = body.request_id;
    this.retryAfter = retryAfter;
  }
  get unreachable() {
    return this.status === 0 || this.status === 502 || this.status === 504 || this.code === 'unavailable';
  }
}

type Listener = () => void;
const expiredListeners = new Set<Listener>();
const reachability = new Set<(ok: boolean) => void>();

/** Called when a request fails with 401 and a refresh did not help. */
export function onSessionExpired(fn: Listener) {
  expiredListeners.add(fn);
  return () => {
    expiredListeners.delete(fn);
  };
}
/** Called with false when the API cannot be reached, true when it answers again. */
export function onReachability(fn: (ok: boolean) => void) {
  reachability.add(fn);
  return () => {
    reachability.delete(fn);
  };
}
let lastReachable = true;
function setReachable(ok: boolean) {
  if (ok === lastReachable) return;
  lastReachable = ok;
  reachability.forEach((f) => f(ok));
}

let refreshing: Promise<boolean> | null = null;
/** One refresh at a time, shared by every request that saw a 401. */
export function refreshSession(): Promise<boolean> {
  if (!refreshing) {
    // `{}`: use the refresh cookie (the endpoint takes a JSON body).
    refreshing = fetch('/api/auth/refresh', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: '{}',
    })
      .then((r) => r.ok)
      .catch(() => false)
      .finally(() => {
        setTimeout(() => (refreshing = null), 0);
      });
  }
  return refreshing;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  /** Do not try a refresh or signal expiry on 401 (the login calls). */
  noAuthRetry?: boolean;
  signal?: AbortSignal;
}

export function buildUrl(path: string, query?: RequestOptions['query']) {
  const q = new URLSearchParams();
  if (query) for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `/api${path}${s ? (path.includes('?') ? '&' : '?') + s : ''}`;
}

async function once(path: string, opts: RequestOptions): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  try {
    const r = await fetch(buildUrl(path, opts.query), {
      method: opts.method ?? 'GET',
      headers,
      body,
      credentials: 'same-origin',
      signal: opts.signal,
    });
    setReachable(r.status !== 502 && r.status !== 504);
    return r;
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    setReachable(false);
    throw new ApiError(0, { code: 'unreachable', message: 'The drover API cannot be reached' });
  }
}

async function toError(r: Response): Promise<ApiError> {
  let body: Partial<ApiErrorBody> = {};
  try {
    const t = await r.text();
    body = t ? JSON.parse(t) : {};
  } catch {
    body = {};
  }
  const ra = r.headers.get('Retry-After');
  if (r.status === 429) body.message = `${body.message || 'Too many requests'}${ra ? ` (try again in ${ra} s)` : ''}`;
  return new ApiError(r.status, body, ra ? Number(ra) : undefined);
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  let r = await once(path, opts);
  if (r.status === 401 && !opts.noAuthRetry) {
    if (await refreshSession()) r = await once(path, opts);
    if (r.status === 401) {
      const err = await toError(r);
      expiredListeners.forEach((f) => f());
      throw err;
    }
  }
  if (!r.ok) throw await toError(r);
  if (r.status === 204) return undefined as T;
  const text = await r.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const get = <T>(path: string, query?: RequestOptions['query'], signal?: AbortSignal) => api<T>(path, { query, signal });
export const post = <T>(path: string, body?: unknown, opts: RequestOptions = {}) => api<T>(path, { ...opts, method: 'POST', body });
export const patch = <T>(path: string, body?: unknown) => api<T>(path, { method: 'PATCH', body });
export const del = <T = void>(path: string) => api<T>(path, { method: 'DELETE' });
