// The UI's view of the API. Written from the draft contract; once api/openapi.json
// lands these become aliases into the generated schema.d.ts.

export type Role = 'super_admin' | 'tenant_admin' | 'operator' | 'viewer';
export const ROLES: Role[] = ['viewer', 'operator', 'tenant_admin', 'super_admin'];

export interface Me {
  id: string;
  email: string;
  name: string;
  role: Role;
  tenant_id: string | null;
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
  expires_in?: number;
  user: Me;
}
export type LegacyLoginReply = { status: 'enrolment_required'; enrolment_ticket: string } | { status: string; [k: string]: unknown };

export interface Tenant {
  id: string;
  name: string;
  slug?: string;
  created_at?: string;
  default_poll_interval_s?: number;
  device_count?: number;
}

export interface User {
  id: string;
  email: string;
  name: string;
  role: Role;
  tenant_id?: string | null;
  created_at?: string;
  last_login_at?: string | null;
  enrolled?: boolean;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  role: Role;
  created_at?: string;
  expires_at?: string | null;
  last_used_at?: string | null;
}
export interface NewApiKey {
  id: string;
  key: string;
  prefix: string;
}

export type DeviceStatus = 'online' | 'offline' | 'degraded' | 'unknown' | 'connecting' | string;

export interface Device {
  id: string;
  name: string;
  host: string;
  port?: number;
  status: DeviceStatus;
  status_reason?: string | null;
  identity?: string | null;
  version?: string | null;
  board?: string | null;
  model?: string | null;
  uptime_s?: number | null;
  cpu_load?: number | null;
  memory_used_pct?: number | null;
  last_seen_at?: string | null;
  tags?: string[];
  group_id?: string | null;
  group?: string | null;
  site_id?: string | null;
  site?: string | null;
  poll_interval_s?: number | null;
  created_at?: string;
}

export interface Page<T> {
  items: T[];
  total: number;
}

export interface NewDevice {
  name: string;
  host: string;
  port?: number;
  username?: string;
  password?: string;
  tags?: string[];
  group_id?: string | null;
  site_id?: string | null;
}

export interface Named {
  id: string;
  name: string;
}

export interface MetricPoint {
  at: string;
  cpu_load: number | null;
  memory_used_pct: number | null;
  disk_used_pct: number | null;
  temperature_c: number | null;
}
export interface Metrics {
  bucket_seconds: number;
  points: MetricPoint[];
}

export interface InterfaceRate {
  name: string;
  type?: string;
  running?: boolean;
  disabled?: boolean;
  rx_bps: number | null;
  tx_bps: number | null;
  rx_bytes?: number | null;
  tx_bytes?: number | null;
  at?: string;
}

export interface CommandReply {
  type: string;
  attributes: Record<string, string>;
}

export interface FleetSummary {
  total: number;
  by_status: Record<string, number>;
  needing_attention?: { device_id: string; name: string; status: DeviceStatus; reason?: string | null }[];
  cpu_avg?: number | null;
  memory_avg?: number | null;
}

export interface AuditEntry {
  id: string | number;
  at: string;
  action: string;
  actor_id?: string | null;
  actor_email?: string | null;
  target?: string | null;
  details?: unknown;
  request_id?: string | null;
}

export interface BulkUpdate {
  device_ids: string[];
  add_tags?: string[];
  remove_tags?: string[];
  group_id?: string | null;
  delete?: boolean;
}
