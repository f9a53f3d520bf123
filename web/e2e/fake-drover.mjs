#!/usr/bin/env node
// A stand-in for drover, for developing the UI and its e2e script before the real API
// exists: serves web/dist with the production CSP and cache headers and an in-memory
// API (SRP-6a server side, users, a simulated fleet whose devices come online, SSE).
// NOT a test of drover: deploy/test.sh runs web/e2e/run.mjs against a real node.
//   node e2e/fake-drover.mjs [port]   (FIRST_ADMIN_EMAIL / FIRST_ADMIN_PASSWORD, FAKE_DEVICES)
import { createServer } from 'node:http';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname, extname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const PORT = Number(process.argv[2] ?? process.env.PORT ?? 8099);
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

// ---- SRP-6a server side (same group and layout as drover-auth)
const N = BigInt('0xac6bdb41324a9a9bf166de5e1389582faf72b6651987ee07fc3192943db56050a37329cbb4a099ed8193e0757767a13dd52312ab4b03310dcd7f48a9da04fd50e8083969edb767b0cf6095179a163ab3661a05fbd5faaae82918a9962f0b93b855f97993ec975eeaa80d740adbf4ff747359d041d5c33ea71d281e446b14773bca97b43a23fb801676bd207a436c6481f1d2b9078717461a5b9d32e688f87748544523b524b0d57d5ea77a2775d2ecfa032cfbdbf52fb3786160279004e57ae6af874e7303ce53299ccc041c7bc308d82a5698f3a8d0c38271ae35f8e9dbfbb694b5c803d89f7ae435de236d525f54759b65e372fcd68ef20fa7111f9e4aff73');
const g = 2n;
const hex = (n) => { const h = n.toString(16); return h.length % 2 ? '0' + h : h; };
const buf = (n) => Buffer.from(hex(n), 'hex');
const pad = (n) => Buffer.concat([Buffer.alloc(256 - buf(n).length), buf(n)]);
const H = (...p) => createHash('sha256').update(Buffer.concat(p)).digest();
const big = (b) => BigInt('0x' + (b.toString('hex') || '0'));
const strip = (b) => buf(big(b));
function modPow(b, e, m) { let r = 1n; b %= m; while (e > 0n) { if (e & 1n) r = (r * b) % m; b = (b * b) % m; e >>= 1n; } return r; }
const k = big(H(buf(N), pad(g)));

// ---- state
const now = () => new Date().toISOString();
const users = new Map(); // id -> user
const byEmail = (e) => [...users.values()].find((u) => u.email === e.toLowerCase());
const addUser = (u) => { const id = randomUUID(); users.set(id, { id, enrolled: false, created_at: now(), last_login_at: null, ...u, email: u.email.toLowerCase() }); return users.get(id); };
addUser({ email: process.env.FIRST_ADMIN_EMAIL ?? 'admin@example.com', name: 'Admin', role: 'super_admin', tenant_id: null, password: process.env.FIRST_ADMIN_PASSWORD ?? 'bootstrap-password' });
const tickets = new Map(), srpSessions = new Map(), sessions = new Map(), sseTickets = new Map();
const tenants = new Map();
const devices = new Map(); // id -> device
const audit = [];
const tags = new Map([['core', { id: randomUUID(), name: 'core', detail: null }], ['edge', { id: randomUUID(), name: 'edge', detail: null }]].map(([, t]) => [t.id, t]));
const streams = new Set();
let seq = 0;

function addTenant(name) {
  const t = { id: randomUUID(), name, created_at: now() };
  tenants.set(t.id, t);
  return t;
}
function addDevice(tenant_id, d) {
  const id = randomUUID();
  const dev = { id, tenant_id, name: d.name ?? d.address, address: d.address, api_port: d.api_port ?? 8728, tls_mode: d.tls_mode ?? 'plain', status: 'connecting', status_reason: 'waiting for first poll', status_changed_at: now(), tags: d.tags ?? [], groups: [], site_id: null, routeros_version: null, board_name: null, serial_number: null, uptime_s: null, cpu_percent: null, memory_percent: null, disk_percent: null, temperature_c: null, last_seen_at: null, created_at: now(), _up: Date.now() + 2000 + Math.random() * 6000, _history: [] };
  devices.set(id, dev);
  return dev;
}
const demo = addTenant('Demo');
for (let i = 0; i < Number(process.env.FAKE_DEVICES ?? 40); i++) addDevice(demo.id, { name: `sim-${String(i).padStart(3, '0')}`, address: `10.99.0.${i + 1}`, tags: i % 2 ? ['edge'] : ['core'] });

function emit(tenant_id, event, data) {
  const id = ++seq;
  for (const s of streams) if (s.tenant_id === tenant_id) s.res.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}
setInterval(() => {
  for (const d of devices.values()) {
    if (d.status !== 'online' && Date.now() > d._up && !d.address.startsWith('192.0.2.')) {
      const previous = d.status;
      Object.assign(d, { status: 'online', status_reason: null, status_changed_at: now(), routeros_version: '7.16.2', board_name: 'CHR', serial_number: 'SIM' + d.id.slice(0, 6), uptime_s: 100 });
      d._history.unshift({ at: now(), status: 'online', reason: null });
      emit(d.tenant_id, 'device.status', { version: 1, device_id: d.id, tenant_id: d.tenant_id, status: 'online', previous_status: previous, reason: null, routeros_version: '7.16.2', board_name: 'CHR', uptime: 100, epoch: 1, at: now() });
    }
    if (d.status === 'online') {
      d.uptime_s += 2;
      d.cpu_percent = Math.round(10 + 30 * Math.abs(Math.sin(Date.now() / 20000 + d.address.length)) + Math.random() * 10);
      d.memory_percent = 40 + Math.random() * 5;
      d.last_seen_at = now();
      emit(d.tenant_id, 'metrics.sample', { version: 1, device_id: d.id, tenant_id: d.tenant_id, timestamp: now(), cpu_percent: d.cpu_percent, memory_percent: d.memory_percent, disk_percent: 12, uptime: d.uptime_s, temperature_c: 44, interfaces: [{ name: 'ether1', running: true, rx_bytes: 0, tx_bytes: 0, rx_bps: Math.random() * 5e6, tx_bps: Math.random() * 1e6 }, { name: 'ether2', running: false, rx_bytes: 0, tx_bytes: 0, rx_bps: 0, tx_bps: 0 }], wireless: null, epoch: 1 });
    }
  }
}, 2000);
setInterval(() => { for (const s of streams) s.res.write(': heartbeat\n\n'); }, 15000);

// ---- http
const rank = { viewer: 0, operator: 1, tenant_admin: 2, super_admin: 3 };
function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}
const err = (res, status, code, message) => send(res, status, { code, message, request_id: randomUUID() });
function cookies(req) { return Object.fromEntries((req.headers.cookie ?? '').split(';').map((c) => c.trim().split('=')).filter((p) => p[0])); }
function current(req) { const s = sessions.get(cookies(req).sid); return s ? users.get(s) : null; }
async function body(req) { let b = ''; for await (const c of req) b += c; try { return b ? JSON.parse(b) : {}; } catch { return null; } }

function serveStatic(req, res) {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
  let file = join(DIST, path);
  const isAsset = path.startsWith('/assets/');
  if (!existsSync(file) || statSync(file).isDirectory()) {
    if (isAsset) { res.writeHead(404); return res.end(); }
    file = join(DIST, 'index.html');
  }
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json' };
  res.writeHead(200, {
    'Content-Type': types[extname(file)] ?? 'application/octet-stream',
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': isAsset ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  res.end(readFileSync(file));
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (!p.startsWith('/api/')) return serveStatic(req, res);
  const m = req.method;
  const b = m === 'GET' || m === 'DELETE' ? {} : await body(req);
  if (b === null) return err(res, 400, 'bad_request', 'body is not JSON');
  // --- auth (no session needed)
  if (p === '/api/auth/login' && m === 'POST') {
    const u = byEmail(b.email ?? '');
    if (u?.enrolled) return err(res, 409, 'srp_required', 'This account signs in with SRP');
    if (!u || u.password !== b.password) return err(res, 401, 'unauthenticated', 'Invalid credentials');
    const t = randomUUID(); tickets.set(t, u.id);
    return send(res, 200, { status: 'enrolment_required', enrolment_ticket: t });
  }
  if (p === '/api/auth/srp/enrol' && m === 'POST') {
    const id = tickets.get(b.enrolment_ticket); tickets.delete(b.enrolment_ticket);
    if (!id) return err(res, 401, 'unauthenticated', 'Enrolment ticket expired');
    Object.assign(users.get(id), { salt: b.salt, verifier: BigInt('0x' + b.verifier), enrolled: true, password: null });
    return send(res, 204);
  }
  if (p === '/api/auth/srp/init' && m === 'POST') {
    const u = byEmail(b.email ?? '');
    const A = BigInt('0x' + b.a);
    if (A % N === 0n) return err(res, 400, 'bad_request', 'invalid A');
    const sid = randomUUID();
    if (!u?.enrolled) return send(res, 200, { session_id: sid, salt: createHash('sha256').update('fake' + b.email).digest('hex'), b: hex(big(randomBytes(256)) % N) });
    const bb = big(randomBytes(32));
    const B = (k * u.verifier + modPow(g, bb, N)) % N;
    srpSessions.set(sid, { u, A, b: bb, B });
    return send(res, 200, { session_id: sid, salt: u.salt, b: hex(B) });
  }
  if (p === '/api/auth/srp/verify' && m === 'POST') {
    const s = srpSessions.get(b.session_id); srpSessions.delete(b.session_id);
    if (!s) return err(res, 401, 'unauthenticated', 'Invalid credentials');
    const { u, A, B } = s;
    const uu = big(H(pad(A), pad(B)));
    const S = modPow((A * modPow(u.verifier, uu, N)) % N, s.b, N);
    const K = H(buf(S));
    const M1 = H(buf(big(H(buf(N))) ^ big(H(buf(g)))), strip(H(Buffer.from(u.email))), Buffer.from(u.salt, 'hex'), buf(A), buf(B), K);
    if (M1.toString('hex') !== b.m1) return err(res, 401, 'unauthenticated', 'Invalid credentials');
    const sid = randomUUID(); sessions.set(sid, u.id); u.last_login_at = now();
    audit.unshift({ id: audit.length + 1, at: now(), actor_kind: 'user', actor_id: u.id, action: 'auth.login', resource_type: 'user', resource_id: u.id, device_id: null, ip_address: '127.0.0.1', details: {} });
    const me = { id: u.id, email: u.email, name: u.name, role: u.role, tenant_id: u.tenant_id };
    return send(res, 200, { m2: H(buf(A), M1, K).toString('hex'), access_token: 'cookie', expires_in: 900, user: me }, { 'Set-Cookie': `sid=${sid}; HttpOnly; SameSite=Lax; Path=/` });
  }
  if (p === '/api/sse/subscribe') {
    const t = sseTickets.get(url.searchParams.get('ticket')); sseTickets.delete(url.searchParams.get('ticket'));
    if (!t || t.tenant_id !== url.searchParams.get('tenant_id')) return err(res, 401, 'unauthenticated', 'bad ticket');
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
    res.write(': hello\n\n');
    const s = { res, tenant_id: t.tenant_id }; streams.add(s);
    req.on('close', () => streams.delete(s));
    return;
  }
  const me = current(req);
  if (p === '/api/auth/refresh') return me ? send(res, 204) : err(res, 401, 'unauthenticated', 'No session');
  if (!me) return err(res, 401, 'unauthenticated', 'Sign in first');
  if (p === '/api/auth/me') return send(res, 200, { id: me.id, email: me.email, name: me.name, role: me.role, tenant_id: me.tenant_id, via: 'cookie' });
  if (p === '/api/auth/logout') { sessions.delete(cookies(req).sid); return send(res, 204, undefined, { 'Set-Cookie': 'sid=; Max-Age=0; Path=/' }); }
  if (p === '/api/auth/sse-ticket') { const t = randomUUID(); sseTickets.set(t, { tenant_id: b.tenant_id }); return send(res, 200, { ticket: t, expires_in: 30 }); }
  if (p === '/api/auth/password') { Object.assign(me, { salt: b.salt, verifier: BigInt('0x' + b.verifier) }); return send(res, 204); }
  const need = (r) => rank[me.role] >= rank[r];
  if (p === '/api/tenants') {
    if (!need('super_admin')) return err(res, 403, 'forbidden', 'super_admin only');
    if (m === 'POST') { if (!b.name) return err(res, 400, 'bad_request', 'name required'); return send(res, 201, addTenant(b.name)); }
    return send(res, 200, [...tenants.values()].map((t) => ({ description: null, contact_email: null, default_poll_interval_s: 30, ...t })));
  }
  const tm = /^\/api\/tenants\/([^/]+)(\/.*)?$/.exec(p);
  if (!tm) return err(res, 404, 'not_found', 'no such path');
  const [, tid, rest = ''] = tm;
  if (me.role !== 'super_admin' && me.tenant_id !== tid) return err(res, 403, 'forbidden', 'other tenant');
  if (!tenants.has(tid)) return err(res, 404, 'not_found', 'no such tenant');
  const mutating = m !== 'GET';
  const list = [...devices.values()].filter((d) => d.tenant_id === tid);
  const strip_ = ({ _up, _history, tenant_id, ...d }) => d;
  if (rest === '' ) return send(res, 200, tenants.get(tid));
  if (rest === '/devices' && m === 'GET') {
    const q = (url.searchParams.get('q') ?? '').toLowerCase(), st = url.searchParams.get('status');
    const tagName = [...tags.values()].find((t) => t.id === url.searchParams.get('tag'))?.name;
    let items = list.filter((d) => (!q || d.name.includes(q) || d.address.includes(q)) && (!st || d.status === st) && (!tagName || d.tags.includes(tagName)));
    const sort = { last_seen: 'last_seen_at' }[url.searchParams.get('sort')] ?? url.searchParams.get('sort') ?? 'name', dir = url.searchParams.get('order') === 'desc' ? -1 : 1;
    items.sort((a, c) => (String(a[sort] ?? '') < String(c[sort] ?? '') ? -dir : dir));
    const off = Number(url.searchParams.get('offset') ?? 0), lim = Number(url.searchParams.get('limit') ?? 50);
    return send(res, 200, { items: items.slice(off, off + lim).map(strip_), total: items.length });
  }
  if (mutating && rest.startsWith('/devices') && !need('operator')) return err(res, 403, 'forbidden', 'Your role cannot change devices or run commands');
  const tagNames = (ids) => (ids ?? []).map((id) => [...tags.values()].find((t) => t.id === id)?.name).filter(Boolean);
  if (rest === '/devices' && m === 'POST') { if (!b.address) return err(res, 422, 'invalid_input', 'address required'); return send(res, 200, strip_(addDevice(tid, { ...b, tags: tagNames(b.tag_ids) }))); }
  if (rest === '/devices/bulk') return send(res, 200, { created: (b.devices ?? []).map((d) => addDevice(tid, { ...d, tls_mode: b.tls_mode, tags: tagNames(b.tag_ids) }).id) });
  if (rest === '/devices/bulk-update') {
    for (const id of b.device_ids ?? []) { const d = devices.get(id); if (!d || d.tenant_id !== tid) continue; if (b.delete) devices.delete(id); else { d.tags = [...new Set([...(d.tags ?? []), ...tagNames(b.add_tag_ids)])].filter((t) => !tagNames(b.remove_tag_ids).includes(t)); } }
    return send(res, 200, { matched: (b.device_ids ?? []).length });
  }
  const dm = /^\/devices\/([^/]+)(\/.*)?$/.exec(rest);
  if (dm) {
    const d = devices.get(dm[1]);
    if (!d || d.tenant_id !== tid) return err(res, 404, 'not_found', 'no such device');
    const sub = dm[2] ?? '';
    if (sub === '' && m === 'GET') return send(res, 200, strip_(d));
    if (sub === '' && m === 'DELETE') { devices.delete(d.id); return send(res, 204); }
    if (sub === '/test-connection') return send(res, 200, { ok: true, latency_ms: 3, identity: d.name, version: d.routeros_version });
    if (sub === '/commands') return send(res, 200, { rows: [{ name: d.name, 'cpu-load': String(d.cpu_percent ?? 0), 'board-name': 'CHR' }], done: {} });
    if (sub === '/status-history') return send(res, 200, d._history);
    if (sub === '/metrics') {
      const health = [], interfaces = [];
      for (let t = Date.now() - 3600_000; t < Date.now(); t += 60_000) {
        const at = new Date(t).toISOString();
        health.push({ at, samples: 6, cpu_percent: 20 + 10 * Math.sin(t / 600000), cpu_max: 40, memory_percent: 41, disk_percent: 12, temperature_c: 44 });
        interfaces.push({ at, name: 'ether1', rx_bps: 2e6 + 1e6 * Math.sin(t / 300000), tx_bps: 5e5, rx_bps_max: 4e6, tx_bps_max: 1e6 });
      }
      return send(res, 200, { from: new Date(Date.now() - 3600_000).toISOString(), to: now(), bucket_seconds: 60, health, interfaces });
    }
  }
  if (rest === '/fleet/summary') {
    const by = {}; for (const d of list) by[d.status] = (by[d.status] ?? 0) + 1;
    const on = list.filter((d) => d.status === 'online');
    const avg = (k) => (on.length ? on.reduce((a, d) => a + (d[k] ?? 0), 0) / on.length : null);
    return send(res, 200, { total: list.length, by_status: by, attention: list.filter((d) => d.status !== 'online').slice(0, 20).map(strip_), cpu_avg: avg('cpu_percent'), memory_avg: avg('memory_percent') });
  }
  if (rest === '/tags' && m === 'POST') { const t = { id: randomUUID(), name: b.name, detail: null }; tags.set(t.id, t); return send(res, 200, t); }
  if (['/groups', '/tags', '/sites'].includes(rest)) return send(res, 200, rest === '/tags' ? [...tags.values()] : []);
  if (rest.startsWith('/users') || rest.startsWith('/api-keys') || rest.startsWith('/audit')) {
    if (!need('tenant_admin')) return err(res, 403, 'forbidden', 'tenant_admin only');
    if (rest === '/users' && m === 'GET') return send(res, 200, [...users.values()].filter((u) => u.tenant_id === tid).map(({ password, salt, verifier, enrolled, ...u }) => ({ ...u, is_active: true, must_enrol: !enrolled })));
    if (rest === '/users' && m === 'POST') { if (byEmail(b.email)) return err(res, 409, 'conflict', 'A user with this email exists'); const u = addUser({ ...b, tenant_id: tid }); return send(res, 200, { id: u.id, tenant_id: tid, email: u.email, name: u.name, role: u.role, is_active: true, must_enrol: true, last_login_at: null, created_at: u.created_at }); }
    const um = /^\/users\/([^/]+)$/.exec(rest);
    if (um && m === 'PATCH') { Object.assign(users.get(um[1]), b.role ? { role: b.role } : {}); return send(res, 200, {}); }
    if (um && m === 'DELETE') { users.delete(um[1]); return send(res, 204); }
    if (rest === '/api-keys' && m === 'GET') return send(res, 200, []);
    if (rest === '/api-keys' && m === 'POST') return send(res, 201, { id: randomUUID(), key: 'drv_' + randomBytes(24).toString('base64url'), prefix: 'drv_' });
    if (rest === '/audit') return send(res, 200, { items: audit.slice(0, 50), next_before_id: null });
  }
  return err(res, 404, 'not_found', `fake drover has no ${m} ${p}`);
});
server.listen(PORT, '127.0.0.1', () => console.log(`fake drover on http://127.0.0.1:${PORT} (tenant ${demo.id})`));
