import { createRootRouteWithContext, createRoute, createRouter, lazyRouteComponent, Outlet, redirect } from '@tanstack/react-router';
import type { QueryClient } from '@tanstack/react-query';
import { ApiError } from './api/client';
import { meQuery, tenantsQuery } from './api/hooks';
import type { Me } from './api/types';
import { Layout } from './components/Layout';
import { ErrorState, SkeletonRows } from './components/ui';
import { rememberedTenant } from './lib/tenantPref';

export interface FleetSearch {
  q?: string;
  status?: string;
  tag?: string;
  group?: string;
  site?: string;
  sort?: 'name' | 'address' | 'status' | 'last_seen';
  order?: 'asc' | 'desc';
}

export interface RouterContext {
  queryClient: QueryClient;
}

/** Only same-origin paths are followed after sign-in. */
export function safeRedirect(r: unknown): string | undefined {
  return typeof r === 'string' && r.startsWith('/') && !r.startsWith('//') && !r.startsWith('/login') ? r : undefined;
}

const rootRoute = createRootRouteWithContext<RouterContext>()({
  component: () => <Outlet />,
  notFoundComponent: () => (
    <div className="p-8">
      <ErrorState title="Not found" error={new Error('There is no page at this address.')} />
    </div>
  ),
});

const loginRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/login',
  validateSearch: (s: Record<string, unknown>): { redirect?: string; expired?: number } => ({
    redirect: safeRedirect(s.redirect),
    expired: s.expired ? 1 : undefined,
  }),
  component: lazyRouteComponent(() => import('./pages/Login')),
});

const appRoute = createRoute({
  getParentRoute: () => rootRoute,
  id: 'app',
  beforeLoad: async ({ context, location }) => {
    try {
      const me = await context.queryClient.ensureQueryData(meQuery);
      return { me };
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        throw redirect({ to: '/login', search: { redirect: location.href } });
      }
      throw e;
    }
  },
  component: Layout,
  pendingComponent: () => (
    <div className="p-8">
      <SkeletonRows rows={8} />
    </div>
  ),
  errorComponent: ({ error, reset }) => (
    <div className="mx-auto max-w-xl p-8">
      <ErrorState title="drover is not answering" error={error} onRetry={reset} />
    </div>
  ),
});

const indexRoute = createRoute({
  getParentRoute: () => appRoute,
  path: '/',
  beforeLoad: async ({ context }) => {
    const me = (context as unknown as { me: Me }).me;
    if (me.tenant_id) throw redirect({ to: '/t/$tenantId', params: { tenantId: me.tenant_id } });
    const tenants = await context.queryClient.fetchQuery(tenantsQuery);
    if (!tenants.length) throw redirect({ to: '/setup' });
    const pref = rememberedTenant();
    const t = tenants.find((x) => x.id === pref) ?? tenants[0];
    throw redirect({ to: '/t/$tenantId', params: { tenantId: t.id } });
  },
});

const setupRoute = createRoute({ getParentRoute: () => appRoute, path: '/setup', component: lazyRouteComponent(() => import('./pages/Setup')) });
const tenantsRoute = createRoute({ getParentRoute: () => appRoute, path: '/tenants', component: lazyRouteComponent(() => import('./pages/Admin'), 'TenantsPage') });
const accountRoute = createRoute({ getParentRoute: () => appRoute, path: '/account', component: lazyRouteComponent(() => import('./pages/Account')) });

const tenantRoute = createRoute({ getParentRoute: () => appRoute, path: '/t/$tenantId', component: () => <Outlet /> });
const dashboardRoute = createRoute({ getParentRoute: () => tenantRoute, path: '/', component: lazyRouteComponent(() => import('./pages/Dashboard')) });
export const fleetRoute = createRoute({
  getParentRoute: () => tenantRoute,
  path: '/devices',
  validateSearch: (s: Record<string, unknown>): FleetSearch => ({
    q: typeof s.q === 'string' ? s.q : undefined,
    status: typeof s.status === 'string' ? s.status : undefined,
    tag: typeof s.tag === 'string' ? s.tag : undefined,
    group: typeof s.group === 'string' ? s.group : undefined,
    site: typeof s.site === 'string' ? s.site : undefined,
    sort: s.sort === 'name' || s.sort === 'address' || s.sort === 'status' || s.sort === 'last_seen' ? s.sort : undefined,
    order: s.order === 'desc' ? ('desc' as const) : s.order === 'asc' ? ('asc' as const) : undefined,
  }),
  component: lazyRouteComponent(() => import('./pages/Fleet')),
});
const deviceRoute = createRoute({ getParentRoute: () => tenantRoute, path: '/devices/$deviceId', component: lazyRouteComponent(() => import('./pages/Device')) });
const usersRoute = createRoute({ getParentRoute: () => tenantRoute, path: '/users', component: lazyRouteComponent(() => import('./pages/Admin'), 'UsersPage') });
const keysRoute = createRoute({ getParentRoute: () => tenantRoute, path: '/api-keys', component: lazyRouteComponent(() => import('./pages/Admin'), 'ApiKeysPage') });
const auditRoute = createRoute({ getParentRoute: () => tenantRoute, path: '/audit', component: lazyRouteComponent(() => import('./pages/Admin'), 'AuditPage') });

const routeTree = rootRoute.addChildren([
  loginRoute,
  appRoute.addChildren([
    indexRoute,
    setupRoute,
    tenantsRoute,
    accountRoute,
    tenantRoute.addChildren([dashboardRoute, fleetRoute, deviceRoute, usersRoute, keysRoute, auditRoute]),
  ]),
]);

export function makeRouter(queryClient: QueryClient) {
  return createRouter({
    routeTree,
    context: { queryClient },
    defaultPreload: 'intent',
    defaultPendingMs: 150,
    defaultPendingComponent: () => (
      <div className="p-6">
        <SkeletonRows rows={6} />
      </div>
    ),
    defaultErrorComponent: ({ error, reset }) => (
      <div className="p-6">
        <ErrorState error={error} onRetry={reset} />
      </div>
    ),
  });
}

declare module '@tanstack/react-router' {
  interface Register {
    router: ReturnType<typeof makeRouter>;
  }
}
