import { Link } from '@tanstack/react-router';
import type { LiveEvent } from '../lib/sse';
import { deviceNames } from '../api/hooks';
import { isStatusEvent } from '../lib/live';
import { formatRelative } from '../lib/format';
import { Badge, Empty, StatusBadge } from './ui';

function describe(e: LiveEvent): string {
  const d = e.data;
  const who = e.device_id ? (deviceNames.get(e.device_id) ?? `device ${e.device_id.slice(0, 8)}`) : '';
  const s = (v: unknown) => (v == null ? '' : String(v));
  switch (e.type) {
    case 'device.status':
    case 'device_status':
      return `${who} is ${s(d.status)}${d.reason ? ` (${s(d.reason)})` : ''}`;
    case 'alert.fired':
      return `${who ? who + ': ' : ''}${s(d.message) || s(d.rule)}`;
    case 'alert.resolved':
      return `${who ? who + ': ' : ''}resolved ${s(d.rule)}`;
    case 'config.change':
      return `${who}: ${s(d.menu)} ${s(d.action)} (${s(d.source)})`;
    case 'config.push':
      return `${who}: config push ${s(d.stage)}${d.message ? ` — ${s(d.message)}` : ''}`;
    case 'firmware.progress':
      return `${who}: firmware ${s(d.stage)} ${s(d.status)}`;
    default:
      return `${who} ${e.type}`;
  }
}

export function EventList({ events, tenantId, limit = 12 }: { events: LiveEvent[]; tenantId: string; limit?: number }) {
  if (!events.length) return <Empty>No events since this page opened. Status changes, alerts and pushes appear here live.</Empty>;
  return (
    <ul className="divide-y divide-slate-100 text-sm dark:divide-slate-800" data-testid="events">
      {events.slice(0, limit).map((e, i) => (
        <li key={`${e.id ?? ''}-${e.receivedAt}-${i}`} className="flex items-center gap-2 py-1.5">
          {isStatusEvent(e.type) && typeof e.data.status === 'string' ? <StatusBadge status={e.data.status} /> : <Badge>{e.type}</Badge>}
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
