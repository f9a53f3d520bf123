// TanStack Query hooks over the API; keys are [area, tenantId, ...].
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { del, get, patch, post } from './client';
import type {
  ApiKey,
  AuditEntry,
  BulkUpdate,
  CommandReply,
  Device,
  FleetSummary,
  InterfaceRate,
  Me,
  Metrics,
  Named,
  NewApiKey,
  NewDevice,
  Page,
  Role,
  Tenant,
  User,
} from './types';

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
    create: useMutation({ mutationFn: (b: { name: string }) => post<Tenant>('/tenants', b), onSuccess: done }),
    update: useMutation({ mutationFn: ({ id, ...b }: { id: string; name: string }) => patch<Tenant>(`/tenants/${id}`, b), onSuccess: done }),
    remove: useMutation({ mutationFn: (id: string) => del(`/tenants/${id}`), onSuccess: done }),
  };
}

export interface DeviceFilters {
  q?: string;
  status?: string;
  tag?: string;
  group?: string;
  site?: string;
  sort?: string;
  order?: 'asc' | 'desc';
}

export const devicePageQuery = (tenantId: string, f: DeviceFilters, page: number, pageSize: number) => ({
  queryKey: ['devices', tenantId, f, page, pageSize] as const,
  queryFn: ({ signal }: { signal: AbortSignal }) =>
    get<Page<Device>>(`${T(tenantId)}/devices`, { ...f, limit: pageSize, offset: page * pageSize }, signal),
  staleTime: 15_000,
});

export const useDevice = (tenantId: string, deviceId: string) =>
  useQuery({
    queryKey: ['device', tenantId, deviceId],
    queryFn: () => get<Device>(`${T(tenantId)}/devices/${deviceId}`),
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
      mutationFn: (devices: NewDevice[]) => post<unknown>(`${T(tenantId)}/devices/bulk`, { devices }),
      onSuccess: done,
    }),
    update: useMutation({
      mutationFn: ({ id, ...b }: Partial<Device> & { id: string }) => patch<Device>(`${T(tenantId)}/devices/${id}`, b),
      onSuccess: (_d, v) => {
        done();
        qc.invalidateQueries({ queryKey: ['device', tenantId, v.id] });
      },
    }),
    remove: useMutation({ mutationFn: (id: string) => del(`${T(tenantId)}/devices/${id}`), onSuccess: done }),
    bulkUpdate: useMutation({ mutationFn: (b: BulkUpdate) => post<unknown>(`${T(tenantId)}/devices/bulk-update`, b), onSuccess: done }),
    testConnection: useMutation({
      mutationFn: (id: string) => post<Record<string, unknown>>(`${T(tenantId)}/devices/${id}/test-connection`),
    }),
  };
}

export const useRunCommand = (tenantId: string, deviceId: string) =>
  useMutation({
    mutationFn: (b: { path: string; action: string; params: Record<string, string> }) =>
      post<{ replies: CommandReply[] }>(`${T(tenantId)}/devices/${deviceId}/commands`, b),
  });

export const useMetrics = (tenantId: string, deviceId: string, fromIso: string, toIso: string) =>
  useQuery({
    queryKey: ['metrics', tenantId, deviceId, fromIso],
    queryFn: () => get<Metrics>(`${T(tenantId)}/devices/${deviceId}/metrics`, { from: fromIso, to: toIso }),
    staleTime: Infinity,
  });

export const useInterfaces = (tenantId: string, deviceId: string) =>
  useQuery({
    queryKey: ['interfaces', tenantId, deviceId],
    queryFn: async () => items(await get<InterfaceRate[] | Page<InterfaceRate>>(`${T(tenantId)}/devices/${deviceId}/interfaces`)),
    refetchInterval: 10_000,
  });

export const useSummary = (tenantId: string) =>
  useQuery({
    queryKey: ['summary', tenantId],
    queryFn: () => get<FleetSummary>(`${T(tenantId)}/fleet/summary`),
    refetchInterval: 30_000,
  });

function namedList(kind: 'groups' | 'tags' | 'sites') {
  return (tenantId: string) =>
    useQuery({
      queryKey: [kind, tenantId],
      queryFn: async () => items(await get<Named[] | Page<Named>>(`${T(tenantId)}/${kind}`)),
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
    create: useMutation({ mutationFn: (name: string) => post<Named>(`${T(tenantId)}/${kind}`, { name }), onSuccess: done }),
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
      mutationFn: (b: { email: string; name: string; role: Role; password: string }) => post<User>(`${T(tenantId)}/users`, b),
      onSuccess: done,
    }),
    update: useMutation({
      mutationFn: ({ id, ...b }: { id: string; role?: Role; name?: string }) => patch<User>(`${T(tenantId)}/users/${id}`, b),
      onSuccess: done,
    }),
    remove: useMutation({ mutationFn: (id: string) => del(`${T(tenantId)}/users/${id}`), onSuccess: done }),
  };
}

export const useApiKeys = (tenantId: string) =>
  useQuery({ queryKey: ['api-keys', tenantId], queryFn: async () => items(await get<ApiKey[] | Page<ApiKey>>(`${T(tenantId)}/api-keys`)) });
export function useApiKeyMutations(tenantId: string) {
  const qc = useQueryClient();
  const done = () => qc.invalidateQueries({ queryKey: ['api-keys', tenantId] });
  return {
    create: useMutation({
      mutationFn: (b: { name: string; role: Role; expires_at?: string }) => post<NewApiKey>(`${T(tenantId)}/api-keys`, b),
      onSuccess: done,
    }),
    revoke: useMutation({ mutationFn: (id: string) => del(`${T(tenantId)}/api-keys/${id}`), onSuccess: done }),
  };
}

export interface AuditFilters {
  action?: string;
  actor_id?: string;
  from?: string;
  to?: string;
}
export const useAudit = (tenantId: string, f: AuditFilters, beforeId?: string) =>
  useQuery({
    queryKey: ['audit', tenantId, f, beforeId],
    queryFn: async () => items(await get<AuditEntry[] | Page<AuditEntry>>(`${T(tenantId)}/audit`, { ...f, limit: 50, before_id: beforeId })),
    placeholderData: keepPreviousData,
  });
