import { useEffect, useRef, useState } from 'react';
import { Link, useParams } from '@tanstack/react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { get } from '../api/client';
import { useSummary } from '../api/hooks';
import type { Device, Page } from '../api/types';
import { Sparkline } from '../components/charts';
import { EventList } from '../components/EventList';
import { Card, ErrorState, PageHeader, Skeleton, SkeletonRows, StatusBadge, Empty } from '../components/ui';
import { formatCount, formatPct } from '../lib/format';
import { allLiveMetrics, isStatusEvent, useLiveVersion, useRecentEvents } from '../lib/live';
import { liveStream } from '../lib/sse';

const ORDER = ['online', 'degraded', 'connecting', 'offline', 'auth_failed', 'quarantined'];

function useFleetSeries(summaryCpu?: number | null, summaryMem?: number | null) {
  const [series, setSeries] = useState<{ cpu: (number | null)[]; mem: (number | null)[] }>({ cpu: [], mem: [] });
  const seeds = useRef({ cpu: summaryCpu, mem: summaryMem });
  seeds.current = { cpu: summaryCpu, mem: summaryMem };
  useEffect(() => {
    const sample = () => {
      const m = allLiveMetrics();
      let c = 0,
        cn = 0,
        r = 0,
        rn = 0;
      const fresh = Date.now() - 120_000;
      m.forEach((v) => {
        if (Date.parse(v.at) < fresh) return;
        if (v.cpu_percent != null) (c += v.cpu_percent), cn++;
        if (v.memory_percent != null) (r += v.memory_percent), rn++;
      });
      const cpu = cn ? c / cn : (seeds.current.cpu ?? null);
      const mem = rn ? r / rn : (seeds.current.mem ?? null);
      setSeries((s) => ({ cpu: [...s.cpu, cpu].slice(-60), mem: [...s.mem, mem].slice(-60) }));
    };
    sample();
    const t = setInterval(sample, 5000);
    return () => clearInterval(t);
  }, []);
  return series;
}

export default function Dashboard() {
  const { tenantId } = useParams({ strict: false }) as { tenantId: string };
  const summary = useSummary(tenantId);
  const qc = useQueryClient();
  const events = useRecentEvents();
  useLiveVersion();
  // Status changes move the counts: refetch the summary, at most every 3 s.
  useEffect(() => {
    let last = 0;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const off = liveStream.subscribe((e) => {
      if (!isStatusEvent(e.type)) return;
      const wait = Math.max(0, last + 3000 - Date.now());
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        qc.invalidateQueries({ queryKey: ['summary', tenantId] });
        qc.invalidateQueries({ queryKey: ['attention', tenantId] });
      }, wait);
    });
    return () => {
      off();
      if (timer) clearTimeout(timer);
    };
  }, [qc, tenantId]);
  const attention = useQuery({
    queryKey: ['attention', tenantId],
    enabled: summary.isSuccess && !summary.data?.attention,
    queryFn: async () => {
      const [off, deg] = await Promise.all([
        get<Page<Device>>(`/tenants/${tenantId}/devices`, { status: 'offline', limit: 10 }),
        get<Page<Device>>(`/tenants/${tenantId}/devices`, { status: 'degraded', limit: 10 }),
      ]);
      return [...deg.items, ...off.items];
    },
  });
  const s = summary.data;
  const series = useFleetSeries(s?.cpu_avg, s?.memory_avg);
  const needing = s?.attention ?? attention.data;
  const statuses = s ? [...ORDER.filter((k) => k in s.by_status), ...Object.keys(s.by_status).filter((k) => !ORDER.includes(k))] : ORDER;

  return (
    <div className="space-y-4">
      <PageHeader title="Dashboard" subtitle="Fleet health at a glance; updates live." />
      {summary.isError ? (
        <ErrorState error={summary.error} onRetry={() => summary.refetch()} />
      ) : (
        <div className="grid grid-cols-2 gap-3 md:grid-cols-4 xl:grid-cols-7" data-testid="status-counts">
          <Card>
            <p className="text-xs uppercase tracking-wide text-slate-500">Devices</p>
            {s ? <p className="mt-1 text-2xl font-semibold" data-count="total">{formatCount(s.total)}</p> : <Skeleton className="mt-2 h-7 w-16" />}
          </Card>
          {statuses.map((k) => (
            <Link key={k} to="/t/$tenantId/devices" params={{ tenantId }} search={{ status: k }}>
              <Card className="h-full hover:border-teal-500">
                <StatusBadge status={k} />
                {s ? <p className="mt-1 text-2xl font-semibold" data-count={k}>{formatCount(s.by_status[k] ?? 0)}</p> : <Skeleton className="mt-2 h-7 w-16" />}
              </Card>
            </Link>
          ))}
        </div>
      )}
      <div className="grid gap-4 lg:grid-cols-3">
        <Card title="Fleet CPU (average)">
          <p className="text-2xl font-semibold">{formatPct(series.cpu.at(-1))}</p>
          <Sparkline values={series.cpu} max={100} className="stroke-teal-500" />
        </Card>
        <Card title="Fleet memory (average)">
          <p className="text-2xl font-semibold">{formatPct(series.mem.at(-1))}</p>
          <Sparkline values={series.mem} max={100} className="stroke-indigo-500" />
        </Card>
        <Card title="Reporting live">
          <p className="text-2xl font-semibold">{formatCount(allLiveMetrics().size)}</p>
          <p className="text-xs text-slate-500">devices that sent metrics since this page opened</p>
        </Card>
      </div>
      <div className="grid gap-4 lg:grid-cols-2">
        <Card title="Needs attention">
          {!needing ? (
            <SkeletonRows rows={4} />
          ) : needing.length === 0 ? (
            <Empty>Every device is online.</Empty>
          ) : (
            <ul className="divide-y divide-slate-100 text-sm dark:divide-slate-800">
              {needing.slice(0, 12).map((d) => (
                <li key={d.id} className="flex items-center gap-2 py-1.5">
                  <StatusBadge status={d.status} />
                  <Link to="/t/$tenantId/devices/$deviceId" params={{ tenantId, deviceId: d.id }} className="flex-1 truncate hover:underline">
                    {d.name}
                  </Link>
                  <span className="truncate text-xs text-slate-500">{d.status_reason ?? d.address}</span>
                </li>
              ))}
            </ul>
          )}
        </Card>
        <Card title="Recent events">
          <EventList events={events} tenantId={tenantId} />
        </Card>
      </div>
    </div>
  );
}
