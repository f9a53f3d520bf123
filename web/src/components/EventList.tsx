import { Link } from '@tanstack/react-router';
import type { LiveEvent } from '../lib/sse';
import { formatRelative } from '../lib/format';
import { Badge, Empty, StatusBadge } from './ui';

function describe(e: LiveEvent): string {
  const d = e.data;
  if (e.type === 'device_status') return `${String(d.name ?? 'device')} is ${String(d.status)}${d.reason ? ` (${String(d.reason)})` : ''}`;
  if (typeof d.message === 'string') return d.message;
  if (e.type === 'firmware_progress') return `firmware ${String(d.stage ?? d.status ?? '')} ${d.percent != null ? `${String(d.percent)}%` : ''}`;
  return e.type.replace(/_/g, ' ');
}

export function EventList({ events, tenantId, limit = 12 }: { events: LiveEvent[]; tenantId: string; limit?: number }) {
  if (!events.length) return <Empty>No events since this page opened. Status changes, alerts and pushes appear here live.</Empty>;
  return (
    <ul className="divide-y divide-slate-100 text-sm dark:divide-slate-800" data-testid="events">
      {events.slice(0, limit).map((e, i) => (
        <li key={`${e.id ?? ''}-${e.receivedAt}-${i}`} className="flex items-center gap-2 py-1.5">
          {e.type === 'device_status' && typeof e.data.status === 'string' ? <StatusBadge status={e.data.status} /> : <Badge>{e.type}</Badge>}
          {e.device_id ? (
            <Link to="/t/$tenantId/devices/$deviceId" params={{ tenantId, deviceId: e.device_id }} className="min-w-0 flex-1 truncate hover:underline">
              {describe(e)}
            </Link>
          ) : (
            <span className="min-w-0 flex-1 truncate">{describe(e)}</span>
          )}
          <span className="shrink-0 text-xs text-slate-500">{formatRelative(e.receivedAt)}</span>
        </li>
      ))}
    </ul>
  );
}
