// TanStack Query hooks over the API; keys are [area, tenantId, ...].
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { del, get, patch, post } from './client';
import type { operations } from './schema';
import type {
  CommandBody,
  NewApiKeyRequest,
  NewTenant,
  NewUser,
  TenantPatch,
  UserPatch,
  ApiKey,
  AuditPage,
  BulkAdd,
  BulkUpdate,
  CommandResult,
  ConnectionTestReport,
  DevicePatch,
  Device,
  FleetSummary,
  Label,
  Me,
  MetricsSeries,
  NewApiKey,
  NewDevice,
  Page,
  StatusChange,
  Tenant,
  User,
} from './types';

/** Device names seen in any list or detail, for events that carry only a device id. */
export const deviceNames = new Map<string, string>();
function remember<T extends Page<Device> | Device>(r: T): T {
  if ('items' in r) r.items.forEach((d) => deviceNames.set(d.id, d.name));
  else deviceNames.set(r.id, r.name);
  return r;
}

const T = (tenantId: string) => `/tenants/${encodeURIComponent(tenantId)}`;

/** Lists come back either as a bare array or as {items, total}. */
function items<T>(r: T[] | Page<T>): T[] {
  return Array.isArray(r) ? r : r.items;
}

export const meQuery = {
  queryKey: ['me'] as const,
  queryFn: () => get<Me>('/auth/me'),
  staleTime: 60_000,
};
export const useMe = () => useQuery(meQuery);

export const tenantsQuery = {
  queryKey: ['tenants'] as const,
  queryFn: async () => items(await get<Tenant[] | Page<Tenant>>('/tenants', { limit: 1000 })),
  staleTime: 30_000,
};
export const useTenants = (enabled = true) => useQuery({ ...tenantsQuery, enabled });
export const useTenant = (tenantId: string) =>
  useQuery({ queryKey: ['tenant', tenantId], queryFn: () => get<Tenant>(T(tenantId)), staleTime: 60_000 });

export function useTenantMutations() {
  const qc = useQueryClient();
  const done = () => qc.invalidateQueries({ queryKey: ['tenants'] });
  return {
    create: useMutation({ mutationFn: (b: NewTenant) => post<Tenant>('/tenants', b), onSuccess: done }),
    update: useMutation({ mutationFn: ({ id, ...b }: TenantPatch & { id: string }) => patch<Tenant>(`/tenants/${id}`, b), onSuccess: done }),
    remove: useMutation({ mutationFn: (id: string) => del(`/tenants/${id}`), onSuccess: done }),
  };
}

/** The fleet list's query parameters, as the spec names and types them. */
export type DeviceFilters = Omit<NonNullable<operations['list_devices']['parameters']['query']>, 'limit' | 'offset' | 'count'>;
type ListQuery = NonNullable<operations['list_devices']['parameters']['query']>;

/** One page of the fleet table. The first page asks for the exact total (one count per filter,
 *  refreshed with the page); the others skip the count, which the table already has. */
export const devicePageQuery = (tenantId: string, f: DeviceFilters, page: number, pageSize: number) => ({
  queryKey: ['devices', tenantId, f, page, pageSize] as const,
  queryFn: ({ signal }: { signal: AbortSignal }) =>
    get<Page<Device>>(
      `${T(tenantId)}/devices`,
      { ...f, limit: pageSize, offset: page * pageSize, count: page === 0 ? 'exact' : 'none' } satisfies ListQuery,
      signal,
    ).then(remember),
  staleTime: 15_000,
});

export const useDevice = (tenantId: string, deviceId: string) =>
  useQuery({
    queryKey: ['device', tenantId, deviceId],
    queryFn: () => get<Device>(`${T(tenantId)}/devices/${deviceId}`).then(remember),
    refetchInterval: 30_000,
  });

export function useDeviceSearch(tenantId: string | undefined, q: string) {
  return useQuery({
    queryKey: ['device-search', tenantId, q],
    queryFn: ({ signal }) => get<Page<Device>>(`${T(tenantId!)}/devices`, { q, limit: 8 }, signal),
    enabled: !!tenantId && q.trim().length > 0,
    placeholderData: keepPreviousData,
    staleTime: 10_000,
  });
}

export function useDeviceMutations(tenantId: string) {
  const qc = useQueryClient();
  const done = () => {
    qc.invalidateQueries({ queryKey: ['devices', tenantId] });
    qc.invalidateQueries({ queryKey: ['summary', tenantId] });
    qc.invalidateQueries({ queryKey: ['tags', tenantId] });
  };
  return {
    create: useMutation({ mutationFn: (b: NewDevice) => post<Device>(`${T(tenantId)}/devices`, b), onSuccess: done }),
    bulkCreate: useMutation({
      mutationFn: (b: BulkAdd) => post<{ created: string[] }>(`${T(tenantId)}/devices/bulk`, b),
      onSuccess: done,
    }),
    update: useMutation({
      mutationFn: ({ id, ...b }: DevicePatch & { id: string }) => patch<Device>(`${T(tenantId)}/devices/${id}`, b),
      onSuccess: (_d, v) => {
        done();
        qc.invalidateQueries({ queryKey: ['device', tenantId, v.id] });
      },
    }),
    remove: useMutation({ mutationFn: (id: string) => del(`${T(tenantId)}/devices/${id}`), onSuccess: done }),
    bulkUpdate: useMutation({ mutationFn: (b: BulkUpdate) => post<{ matched: number }>(`${T(tenantId)}/devices/bulk-update`, b), onSuccess: done }),
    testConnection: useMutation({
      mutationFn: (id: string) => post<ConnectionTestReport>(`${T(tenantId)}/devices/${id}/test-connection`),
    }),
  };
}

export const useRunCommand = (tenantId: string, deviceId: string) =>
  useMutation({
    mutationFn: (b: CommandBody) =>
      post<CommandResult>(`${T(tenantId)}/devices/${deviceId}/commands`, b),
  });

export const useMetrics = (tenantId: string, deviceId: string, fromIso: string, toIso: string) =>
  useQuery({
    queryKey: ['metrics', tenantId, deviceId, fromIso],
    queryFn: () => get<MetricsSeries>(`${T(tenantId)}/devices/${deviceId}/metrics`, { from: fromIso, to: toIso }),
    staleTime: Infinity,
  });

export const useStatusHistory = (tenantId: string, deviceId: string) =>
  useQuery({
    queryKey: ['status-history', tenantId, deviceId],
    queryFn: async () => items(await get<StatusChange[] | Page<StatusChange>>(`${T(tenantId)}/devices/${deviceId}/status-history`, { limit: 20 })),
    refetchInterval: 60_000,
  });

export const useSummary = (tenantId: string) =>
  useQuery({
    queryKey: ['summary', tenantId],
    queryFn: () =>
      get<FleetSummary>(`${T(tenantId)}/fleet/summary`).then((r) => {
        r.attention?.forEach((d) => deviceNames.set(d.id, d.name));
        return r;
      }),
    refetchInterval: 30_000,
  });

function namedList(kind: 'groups' | 'tags' | 'sites') {
  return (tenantId: string) =>
    useQuery({
      queryKey: [kind, tenantId],
      queryFn: async () => items(await get<Label[] | Page<Label>>(`${T(tenantId)}/${kind}`)),
      staleTime: 60_000,
    });
}
export const useGroups = namedList('groups');
export const useTags = namedList('tags');
export const useSites = namedList('sites');
export function useNamedMutations(tenantId: string, kind: 'groups' | 'tags' | 'sites') {
  const qc = useQueryClient();
  const done = () => qc.invalidateQueries({ queryKey: [kind, tenantId] });
  return {
    create: useMutation({ mutationFn: (name: string) => post<Label>(`${T(tenantId)}/${kind}`, { name }), onSuccess: done }),
    remove: useMutation({ mutationFn: (id: string) => del(`${T(tenantId)}/${kind}/${id}`), onSuccess: done }),
  };
}

export const useUsers = (tenantId: string) =>
  useQuery({ queryKey: ['users', tenantId], queryFn: async () => items(await get<User[] | Page<User>>(`${T(tenantId)}/users`)) });
export function useUserMutations(tenantId: string) {
  const qc = useQueryClient();
  const done = () => qc.invalidateQueries({ queryKey: ['users', tenantId] });
  return {
    create: useMutation({
      mutationFn: (b: NewUser) => post<User>(`${T(tenantId)}/users`, b),
      onSuccess: done,
    }),
    update: useMutation({
      mutationFn: ({ id, ...b }: UserPatch & { id: string }) => patch<User>(`${T(tenantId)}/users/${id}`, b),
      onSuccess: done,
    }),
    remove: useMutation({ mutationFn: (id: string) => del(`${T(tenantId)}/users/${id}`), onSuccess: done }),
    resetPassword: useMutation({
      mutationFn: ({ id, password }: { id: string; password: string }) => post(`${T(tenantId)}/users/${id}/reset-password`, { password }),
      onSuccess: done,
    }),
  };
}

export const useApiKeys = (tenantId: string) =>
  useQuery({ queryKey: ['api-keys', tenantId], queryFn: async () => items(await get<ApiKey[] | Page<ApiKey>>(`${T(tenantId)}/api-keys`)) });
export function useApiKeyMutations(tenantId: string) {
  const qc = useQueryClient();
  const done = () => qc.invalidateQueries({ queryKey: ['api-keys', tenantId] });
  return {
    create: useMutation({
      mutationFn: (b: NewApiKeyRequest) => post<NewApiKey>(`${T(tenantId)}/api-keys`, b),
      onSuccess: done,
    }),
    revoke: useMutation({ mutationFn: (id: string) => del(`${T(tenantId)}/api-keys/${id}`), onSuccess: done }),
  };
}

type AuditQuery = NonNullable<operations['list_audit']['parameters']['query']>;
export type AuditFilters = Omit<AuditQuery, 'limit' | 'before_id'>;
export const useAudit = (tenantId: string, f: AuditFilters, beforeId?: number, limit = 50) =>
  useQuery({
    queryKey: ['audit', tenantId, f, beforeId, limit],
    queryFn: async () => {
      const r = await get<AuditPage | AuditPage['items']>(`${T(tenantId)}/audit`, { ...f, limit, before_id: beforeId } satisfies AuditQuery);
      return Array.isArray(r) ? { items: r, next_before_id: r.length === limit ? r[r.length - 1].id : null } : r;
    },
    placeholderData: keepPreviousData,
  });
