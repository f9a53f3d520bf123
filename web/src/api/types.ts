// The UI's API types: aliases into schema.d.ts, which `npm run gen:api` generates from the
// committed api/openapi.json. A spec change that breaks the UI fails `tsc` in the build.
import type { components } from './schema';

type S = components['schemas'];

export type Role = 'super_admin' | 'tenant_admin' | 'operator' | 'viewer';
export const ROLES: Role[] = ['viewer', 'operator', 'tenant_admin', 'super_admin'];
/** The spec types roles as strings; the UI narrows them to the four it knows. */
type WithRole<T> = Omit<T, 'role'> & { role: Role };

export type ApiErrorBody = S['ErrorBody'];

export type Me = WithRole<S['Me']>;
export type SrpInitRequest = S['SrpInitRequest'];
export type SrpInitReply = S['SrpInitResponse'];
export type SrpVerifyRequest = S['SrpVerifyRequest'];
export type SrpVerifyReply = Omit<S['LoginResponse'], 'user'> & { user: Me };
export type LegacyLoginRequest = S['LegacyLoginRequest'];
export type LegacyLoginReply = S['LegacyLoginResponse'];
export type EnrolRequest = S['EnrolRequest'];
export type PasswordChangeRequest = S['PasswordChangeRequest'];
export type SseTicketRequest = S['SseTicketRequest'];
export type SseTicketReply = S['SseTicketResponse'];

export type Tenant = S['Tenant'];
export type NewTenant = S['NewTenant'];
export type TenantPatch = S['TenantPatch'];

export type User = WithRole<S['User']>;
export type NewUser = S['NewUser'];
export type UserPatch = S['UserPatch'];

export type ApiKey = WithRole<S['ApiKey']>;
export type NewApiKeyRequest = S['NewApiKey'];
export type NewApiKey = S['CreatedApiKey'];

export const DEVICE_STATUSES = ['online', 'degraded', 'connecting', 'offline', 'auth_failed', 'quarantined'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number] | string;

export type TlsMode = S['TlsMode'];
export type Device = S['Device'];
/** A page of a list. `total` is exact unless `total_is_exact` is false (then a lower bound or
 *  an estimate: the fleet list counts only up to a bound unless asked `count=exact`). */
export type Page<T> = { items: T[]; total: number; total_is_exact?: boolean; has_more?: boolean; limit?: number; offset?: number };
export type DevicePage = S['DevicePage'];
export type NewDevice = S['NewDeviceBody'];
export type BulkAdd = S['BulkAddBody'];
export type BulkUpdate = S['BulkUpdateBody'];
export type DevicePatch = S['DevicePatch'];
export type Label = S['Label'];
export type Site = S['Site'];

export type HealthPoint = S['MetricsPoint'];
export type InterfacePoint = S['InterfacePoint'];
export type MetricsSeries = S['MetricsSeries'];
export type StatusChange = S['StatusChange'];
export type CommandBody = S['CommandBody'];
export type CommandResult = S['CommandReply'];
export type ConnectionTestReport = S['ConnectionTestReport'];
export type FleetSummary = S['FleetSummary'];

export type AuditRecord = S['AuditRecord'];
export type AuditPage = S['AuditPage'];
