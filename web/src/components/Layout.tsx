import { useEffect, useState } from 'react';
import { Link, Outlet, useNavigate, useParams, useRouterState } from '@tanstack/react-router';
import { useQueryClient } from '@tanstack/react-query';
import { onReachability } from '../api/client';
import { useMe, useTenants } from '../api/hooks';
import type { Me } from '../api/types';
import { logout } from '../lib/auth';
import { clearLive, useStreamState } from '../lib/live';
import { can, roleLabel } from '../lib/roles';
import { liveStream } from '../lib/sse';
import { rememberTenant, rememberedTenant } from '../lib/tenantPref';
import { currentTheme, setTheme, type Theme } from '../lib/theme';
import { CommandPalette } from './CommandPalette';
import { Button, cx } from './ui';

export function useTenantId(): string | undefined {
  const p = useParams({ strict: false }) as { tenantId?: string };
  const me = useMe().data;
  return p.tenantId ?? me?.tenant_id ?? rememberedTenant() ?? undefined;
}

function StreamPill() {
  const s = useStreamState();
  const [, tick] = useState(0);
  useEffect(() => {
    if (s.kind !== 'reconnecting') return;
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [s]);
  if (s.kind === 'idle') return null;
  if (s.kind === 'open')
    return (
      <span data-testid="stream-state" data-state="open" className="inline-flex items-center gap-1.5 rounded-full bg-emerald-100 px-2 py-0.5 text-xs font-medium text-emerald-800 dark:bg-emerald-500/15 dark:text-emerald-300">
        <span className="h-1.5 w-1.5 animate-pulse rounded-full bg-emerald-500" /> Live
      </span>
    );
  if (s.kind === 'connecting')
    return (
      <span data-testid="stream-state" data-state="connecting" className="rounded-full bg-sky-100 px-2 py-0.5 text-xs font-medium text-sky-800 dark:bg-sky-500/15 dark:text-sky-300">
        Connecting…
      </span>
    );
  const secs = Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000));
  return (
    <button
      data-testid="stream-state"
      data-state="reconnecting"
      title={`Live updates lost (${s.reason}); attempt ${s.attempt}. Click to retry now.`}
      onClick={() => liveStream.retryNow()}
      className="rounded-full bg-amber-100 px-2 py-0.5 text-xs font-medium text-amber-800 hover:bg-amber-200 dark:bg-amber-500/15 dark:text-amber-300"
    >
      Reconnecting in {secs}s
    </button>
  );
}

function NavLink({ to, params, children, exact }: { to: string; params?: Record<string, string>; children: string; exact?: boolean }) {
  return (
    <Link
      to={to}
      params={params as never}
      activeOptions={{ exact: !!exact }}
      className="block rounded-md px-3 py-1.5 text-sm text-slate-600 hover:bg-slate-200/60 dark:text-slate-300 dark:hover:bg-slate-800"
      activeProps={{ className: '!bg-teal-600/10 !text-teal-700 dark:!text-teal-300 font-medium' }}
    >
      {children}
    </Link>
  );
}

export function Layout() {
  const me = useMe().data;
  if (!me) return null; // signed out or expired: the router is on its way to /login
  return <Shell me={me} />;
}

function Shell({ me }: { me: Me }) {
  const tenantId = useTenantId();
  const isSuper = me.role === 'super_admin';
  const tenants = useTenants(isSuper);
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [theme, setThemeState] = useState<Theme>(currentTheme());
  const [paletteOpen, setPaletteOpen] = useState(false);
  const [unreachable, setUnreachable] = useState(false);
  const pathname = useRouterState({ select: (s) => s.location.pathname });

  useEffect(() => onReachability((ok) => setUnreachable(!ok)), []);
  // The screens people open most, fetched and compiled while the browser is idle, so opening
  // them later is only a render. Not part of the initial JavaScript.
  useEffect(() => {
    const warm = () => {
      void import('../pages/Fleet');
      void import('../pages/Device');
    };
    const idle = 'requestIdleCallback' in window;
    const id = idle ? window.requestIdleCallback(warm, { timeout: 4000 }) : window.setTimeout(warm, 2000);
    return () => (idle ? window.cancelIdleCallback(id) : window.clearTimeout(id));
  }, []);
  useEffect(() => {
    if (!tenantId) return;
    rememberTenant(tenantId);
    clearLive();
    liveStream.start(tenantId);
  }, [tenantId]);
  useEffect(() => () => liveStream.stop(), []);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') {
        e.preventDefault();
        setPaletteOpen((o) => !o);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  useEffect(() => {
    const online = () => liveStream.retryNow();
    window.addEventListener('online', online);
    return () => window.removeEventListener('online', online);
  }, []);

  const doLogout = async () => {
    liveStream.stop();
    await logout();
    await navigate({ to: '/login', search: {} });
    qc.clear();
  };
  const tp = tenantId ? { tenantId } : undefined;
  const tenantName = tenants.data?.find((t) => t.id === tenantId)?.name;

  return (
    <div className="flex h-full">
      <aside className="no-print hidden w-56 shrink-0 flex-col border-r border-slate-200 bg-white md:flex dark:border-slate-800 dark:bg-slate-900">
        <div className="flex h-12 items-center gap-2 border-b border-slate-200 px-4 dark:border-slate-800">
          <img src="/favicon.svg" alt="" className="h-6 w-6" />
          <span className="font-semibold tracking-tight">drover</span>
        </div>
        <nav className="flex-1 space-y-0.5 overflow-y-auto p-2" aria-label="Main">
          {tp && (
            <>
              <NavLink to="/t/$tenantId" params={tp} exact>
                Dashboard
              </NavLink>
              <NavLink to="/t/$tenantId/devices" params={tp}>
                Devices
              </NavLink>
              {can(me.role, 'administer') && (
                <>
                  <p className="px-3 pb-1 pt-4 text-xs font-semibold uppercase tracking-wide text-slate-400">Administration</p>
                  <NavLink to="/t/$tenantId/users" params={tp}>
                    Users
                  </NavLink>
                  <NavLink to="/t/$tenantId/api-keys" params={tp}>
                    API keys
                  </NavLink>
                  <NavLink to="/t/$tenantId/audit" params={tp}>
                    Audit log
                  </NavLink>
                </>
              )}
            </>
          )}
          {isSuper && (
            <>
              {!can(me.role, 'administer') || !tp ? (
                <p className="px-3 pb-1 pt-4 text-xs font-semibold uppercase tracking-wide text-slate-400">Administration</p>
              ) : null}
              <NavLink to="/tenants">Tenants</NavLink>
              <NavLink to="/setup">First-run setup</NavLink>
            </>
          )}
          <NavLink to="/account">Account</NavLink>
        </nav>
        <div className="border-t border-slate-200 p-3 text-xs text-slate-500 dark:border-slate-800">
          <p className="truncate font-medium text-slate-700 dark:text-slate-200" data-testid="me-email">
            {me.email}
          </p>
          <p data-testid="me-role">{roleLabel[me.role]}</p>
        </div>
      </aside>
      <div className="flex min-w-0 flex-1 flex-col">
        <header className="no-print flex h-12 shrink-0 items-center gap-3 border-b border-slate-200 bg-white px-4 dark:border-slate-800 dark:bg-slate-900">
          {isSuper && tenants.data && tenants.data.length > 0 ? (
            <select
              aria-label="Tenant"
              className="rounded-md border border-slate-300 bg-transparent px-2 py-1 text-sm dark:border-slate-700"
              value={tenantId ?? ''}
              onChange={(e) => navigate({ to: '/t/$tenantId', params: { tenantId: e.target.value } })}
            >
              {!tenantName && <option value="">Choose a tenant…</option>}
              {tenants.data.map((t) => (
                <option key={t.id} value={t.id}>
                  {t.name}
                </option>
              ))}
            </select>
          ) : (
            <span className="text-sm font-medium">{tenantName ?? ''}</span>
          )}
          <button
            onClick={() => setPaletteOpen(true)}
            className="ml-2 hidden flex-1 items-center justify-between rounded-md border border-slate-300 px-3 py-1 text-left text-sm text-slate-400 sm:flex sm:max-w-xs dark:border-slate-700"
          >
            Search devices and pages… <kbd className="rounded border border-slate-300 px-1 text-xs dark:border-slate-700">Ctrl K</kbd>
          </button>
          <div className="ml-auto flex items-center gap-2">
            <StreamPill />
            <Button
              variant="ghost"
              aria-label={theme === 'dark' ? 'Switch to light theme' : 'Switch to dark theme'}
              onClick={() => {
                const t = theme === 'dark' ? 'light' : 'dark';
                setTheme(t);
                setThemeState(t);
              }}
            >
              {theme === 'dark' ? '☀' : '☾'}
            </Button>
            <Button variant="ghost" onClick={doLogout} data-testid="logout">
              Sign out
            </Button>
          </div>
        </header>
        {unreachable && (
          <div role="alert" className="no-print border-b border-red-200 bg-red-50 px-4 py-2 text-sm text-red-800 dark:border-red-900 dark:bg-red-950/60 dark:text-red-200">
            The drover API cannot be reached. Showing the last data we had; retrying automatically.
          </div>
        )}
        <main className="min-h-0 flex-1 overflow-auto p-4 md:p-6" key={pathname.startsWith('/t/') ? tenantId : 'global'}>
          <Outlet />
        </main>
      </div>
      {paletteOpen && <CommandPalette tenantId={tenantId} role={me.role} onClose={() => setPaletteOpen(false)} />}
      <span className={cx('hidden')} />
    </div>
  );
}
