// The UI's view of the API, written against drover-api's DTOs (api/rest/src/routes).
// Once api/openapi.json is committed these become aliases into the generated schema.d.ts.

export type Role = 'super_admin' | 'tenant_admin' | 'operator' | 'viewer';
export const ROLES: Role[] = ['viewer', 'operator', 'tenant_admin', 'super_admin'];

export interface Me {
  id: string;
  email: string;
  name?: string | null;
  role: Role;
  tenant_id: string | null;
  via?: string;
}

export interface ApiErrorBody {
  code: string;
  message: string;
  request_id?: string;
}

export interface SrpInitReply {
  session_id: string;
  salt: string;
  b: string;
}
export interface SrpVerifyReply {
  m2: string;
  access_token?: string;
  token_type?: string;
  expires_in?: number;
  user: Me;
}
export interface LegacyLoginReply {
  status: string;
  enrolment_ticket?: string;
}

export interface Tenant {
  id: string;
  name: string;
  description?: string | null;
  contact_email?: string | null;
  default_poll_interval_s?: number;
  created_at?: string;
}

export interface User {
  id: string;
  tenant_id?: string | null;
  email: string;
  name?: string | null;
  role: Role;
  is_active?: boolean;
  must_enrol?: boolean;
  last_login_at?: string | null;
  created_at?: string;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  role: Role;
  scopes?: string[];
  created_at?: string;
  expires_at?: string | null;
  last_used_at?: string | null;
  revoked_at?: string | null;
}
export interface NewApiKey {
  id: string;
  key: string;
  prefix: string;
}

export const DEVICE_STATUSES = ['online', 'degraded', 'connecting', 'offline', 'auth_failed', 'quarantined'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number] | string;

export interface Device {
  id: string;
  name: string;
  address: string;
  api_port?: number;
  tls_mode?: string;
  status: DeviceStatus;
  status_reason?: string | null;
  status_changed_at?: string | null;
  last_seen_at?: string | null;
  cpu_percent?: number | null;
  memory_percent?: number | null;
  disk_percent?: number | null;
  temperature_c?: number | null;
  wireless_clients?: number | null;
  uptime_s?: number | null;
  routeros_version?: string | null;
  board_name?: string | null;
  serial_number?: string | null;
  site_id?: string | null;
  poll_interval_s?: number | null;
  notes?: string | null;
  tags?: string[];
  groups?: string[];
  created_at?: string;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit?: number;
  offset?: number;
}

export interface NewDevice {
  name: string;
  address: string;
  api_port?: number;
  tls_mode?: string;
  username?: string;
  password?: string;
  tag_ids?: string[];
  site_id?: string | null;
}
export interface BulkAdd {
  devices: { name: string; address: string; api_port?: number }[];
  username?: string;
  password?: string;
  tls_mode?: string;
  tag_ids?: string[];
  site_id?: string | null;
}

export interface Label {
  id: string;
  name: string;
  detail?: string | null;
}

export interface HealthPoint {
  at: string;
  samples?: number;
  cpu_percent: number | null;
  cpu_max?: number | null;
  memory_percent: number | null;
  disk_percent: number | null;
  temperature_c: number | null;
}
export interface InterfacePoint {
  at: string;
  name: string;
  rx_bps: number | null;
  tx_bps: number | null;
  rx_bps_max?: number | null;
  tx_bps_max?: number | null;
}
export interface MetricsSeries {
  from: string;
  to: string;
  bucket_seconds: number;
  health: HealthPoint[];
  interfaces: InterfacePoint[];
}

export interface StatusChange {
  at: string;
  status: string;
  reason?: string | null;
}

export interface CommandResult {
  rows: Record<string, string>[];
  done: Record<string, string>;
}

export interface ConnectionTestReport {
  ok: boolean;
  latency_ms?: number;
  identity?: string | null;
  version?: string | null;
  certificate_fingerprint?: string | null;
  error?: string | null;
}

export interface FleetSummary {
  total: number;
  by_status: Record<string, number>;
  attention?: Device[];
  cpu_avg?: number | null;
  memory_avg?: number | null;
}

export interface AuditRecord {
  id: number;
  at: string;
  actor_kind?: string;
  actor_id?: string | null;
  action: string;
  resource_type?: string | null;
  resource_id?: string | null;
  device_id?: string | null;
  ip_address?: string | null;
  details?: unknown;
}
export interface AuditPage {
  items: AuditRecord[];
  next_before_id?: number | null;
}

export interface BulkUpdate {
  device_ids: string[];
  add_tag_ids?: string[];
  remove_tag_ids?: string[];
  group_id?: string | null;
  delete?: boolean;
}
