import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from '@tanstack/react-router';
import { useDevice, useDeviceMutations, useMe, useMetrics, useRunCommand, useStatusHistory } from '../api/hooks';
import type { CommandBody, CommandResult, HealthPoint } from '../api/types';
import { LineChart, type Series } from '../components/charts';
import { EventList } from '../components/EventList';
import { Button, Card, ErrorState, Field, Input, InlineError, Modal, PageHeader, Select, Skeleton, SkeletonRows, StatusBadge, Table, Badge, Empty } from '../components/ui';
import { formatBps, formatDateTime, formatPct, formatRelative, formatUptime } from '../lib/format';
import { isMetricsEvent, liveMetricsOf, liveStatusOf, parseSample, useLiveVersion, useRecentEvents, type LiveInterface } from '../lib/live';
import { can } from '../lib/roles';
import { liveStream } from '../lib/sse';

const HOUR = 3600_000;
type TrafficPoint = { t: number; rx: number | null | undefined; tx: number | null | undefined };
type HealthAt = Pick<HealthPoint, 'at' | 'cpu_percent' | 'memory_percent' | 'disk_percent' | 'temperature_c'> & { t: number };

/** The last hour from the API, then every metrics.sample for this device from the stream. */
function useLiveMetrics(tenantId: string, deviceId: string) {
  const [from] = useState(() => new Date(Date.now() - HOUR).toISOString());
  const [to] = useState(() => new Date().toISOString());
  const hist = useMetrics(tenantId, deviceId, from, to);
  const [live, setLive] = useState<{ health: HealthAt[]; traffic: Record<string, TrafficPoint[]>; ifaces: LiveInterface[] | null }>({
    health: [],
    traffic: {},
    ifaces: null,
  });
  useEffect(
    () =>
      liveStream.subscribe((e) => {
        if (!isMetricsEvent(e.type) || e.device_id !== deviceId) return;
        const m = parseSample(e.data, e.receivedAt);
        const t = Date.parse(m.at);
        setLive((l) => {
          const traffic = { ...l.traffic };
          for (const i of m.interfaces ?? []) traffic[i.name] = [...(traffic[i.name] ?? []), { t, rx: i.rx_bps ?? null, tx: i.tx_bps ?? null }].slice(-720);
          const p: HealthAt = { at: m.at, t, cpu_percent: m.cpu_percent ?? undefined, memory_percent: m.memory_percent ?? undefined, disk_percent: m.disk_percent ?? undefined, temperature_c: m.temperature_c ?? undefined };
          return { health: [...l.health, p].slice(-720), traffic, ifaces: m.interfaces ?? l.ifaces };
        });
      }),
    [deviceId],
  );
  const health = useMemo(() => {
    const cutoff = Date.now() - HOUR;
    const past: HealthAt[] = (hist.data?.health ?? []).map((p) => ({ ...p, t: Date.parse(p.at) }));
    return [...past, ...live.health].filter((p) => p.t >= cutoff).sort((a, b) => a.t - b.t);
  }, [hist.data, live.health]);
  const traffic = useMemo(() => {
    const out: Record<string, TrafficPoint[]> = {};
    for (const p of hist.data?.interfaces ?? []) (out[p.name] ??= []).push({ t: Date.parse(p.at), rx: p.rx_bps, tx: p.tx_bps });
    for (const [name, pts] of Object.entries(live.traffic)) out[name] = [...(out[name] ?? []), ...pts];
    for (const k of Object.keys(out)) out[k].sort((a, b) => a.t - b.t);
    return out;
  }, [hist.data, live.traffic]);
  // The interfaces table: the latest sample's list, else the last point per interface.
  const ifaces: LiveInterface[] = useMemo(() => {
    if (live.ifaces) return live.ifaces;
    const last = liveMetricsOf(deviceId)?.interfaces;
    if (last) return last;
    return Object.entries(traffic).map(([name, pts]) => ({ name, rx_bps: pts.at(-1)?.rx ?? null, tx_bps: pts.at(-1)?.tx ?? null }));
  }, [live.ifaces, traffic, deviceId]);
  return { hist, health, traffic, ifaces, liveCount: live.health.length };
}

export default function DevicePage() {
  const { tenantId, deviceId } = useParams({ strict: false }) as { tenantId: string; deviceId: string };
  const me = useMe().data!;
  const device = useDevice(tenantId, deviceId);
  const { hist, health, traffic, ifaces, liveCount } = useLiveMetrics(tenantId, deviceId);
  const [iface, setIface] = useState<string>('');
  const events = useRecentEvents().filter((e) => e.device_id === deviceId);
  const history = useStatusHistory(tenantId, deviceId);
  useLiveVersion();
  const navigate = useNavigate();
  const mut = useDeviceMutations(tenantId);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [testResult, setTestResult] = useState<string | null>(null);

  const d = device.data;
  const live = liveStatusOf(deviceId);
  const status = live?.status ?? d?.status ?? 'unknown';
  const last = health.at(-1);
  const ifNames = Object.keys(traffic).length ? Object.keys(traffic) : ifaces.map((i) => i.name);
  const ifName = iface || ifaces.find((i) => i.running !== false && traffic[i.name])?.name || ifNames[0] || '';
  const lm = liveMetricsOf(deviceId);

  const series = (key: 'cpu_percent' | 'memory_percent' | 'disk_percent', name: string, colour: string): Series => ({
    name,
    colour,
    points: health.map((p) => ({ t: p.t, v: p[key] })),
  });

  if (device.isError) return <ErrorState title="Could not load the device" error={device.error} onRetry={() => device.refetch()} />;

  return (
    <div className="space-y-4">
      <nav className="text-sm text-slate-500">
        <Link to="/t/$tenantId/devices" params={{ tenantId }} className="hover:underline">
          Devices
        </Link>{' '}
        / {d?.name ?? '…'}
      </nav>
      <PageHeader
        title={
          <span className="flex items-center gap-3">
            {d ? d.name : <Skeleton className="h-6 w-48" />} <StatusBadge status={status} />
          </span>
        }
        subtitle={d ? `${d.address}${d.api_port ? `:${d.api_port}` : ''}${live?.reason || d.status_reason ? ` — ${live?.reason ?? d.status_reason}` : ''}` : undefined}
        actions={
          can(me.role, 'operate') && d ? (
            <>
              <Button
                busy={mut.testConnection.isPending}
                onClick={() =>
                  mut.testConnection.mutateAsync(deviceId).then(
                    (r) =>
                      setTestResult(
                        r.ok
                          ? `Connection OK in ${r.latency_ms ?? '?'} ms${r.identity ? `: ${r.identity}` : ''}${r.version ? `, RouterOS ${r.version}` : ''}`
                          : `Connection failed: ${r.error ?? 'unknown error'}`,
                      ),
                    (e) => setTestResult(`Failed: ${(e as Error).message}`),
                  )
                }
              >
                Test connection
              </Button>
              <Button variant="danger" onClick={() => setConfirmDelete(true)}>
                Delete
              </Button>
            </>
          ) : undefined
        }
      />
      {testResult && <p className="text-sm" role="status">{testResult}</p>}
      <div className="grid gap-3 sm:grid-cols-2 lg:grid-cols-6" data-testid="device-facts">
        {[
          ['Serial', d?.serial_number],
          ['RouterOS', d?.routeros_version],
          ['Board', d?.board_name],
          ['Uptime', d ? formatUptime(lm?.uptime_s ?? d.uptime_s) : undefined],
          ['Last seen', d ? formatRelative(d.last_seen_at) : undefined],
          ['Tags', d ? (d.tags?.length ? d.tags.join(', ') : '—') : undefined],
        ].map(([k, v]) => (
          <Card key={k as string}>
            <p className="text-xs uppercase tracking-wide text-slate-500">{k}</p>
            {device.isPending ? <Skeleton className="mt-1 h-5 w-24" /> : <p className="mt-1 truncate font-medium">{v ?? '—'}</p>}
          </Card>
        ))}
      </div>
      <div className="grid gap-4 lg:grid-cols-2">
        <Card
          title="CPU and memory (last hour)"
          actions={
            <span className="text-xs text-slate-500" data-testid="live-points" data-count={liveCount}>
              {liveCount ? `${liveCount} live update${liveCount === 1 ? '' : 's'}` : 'waiting for live data'}
            </span>
          }
        >
          {hist.isPending ? (
            <Skeleton className="h-40 w-full" />
          ) : hist.isError ? (
            <ErrorState error={hist.error} onRetry={() => hist.refetch()} />
          ) : (
            <LineChart
              label="CPU and memory"
              max={100}
              format={(v) => `${v.toFixed(0)}%`}
              series={[series('cpu_percent', 'CPU', 'stroke-teal-500'), series('memory_percent', 'Memory', 'stroke-indigo-500'), series('disk_percent', 'Disk', 'stroke-amber-500')]}
            />
          )}
          <p className="mt-2 text-xs text-slate-500" data-testid="latest-cpu" data-value={last?.cpu_percent ?? ''}>
            Latest: CPU {formatPct(last?.cpu_percent)}, memory {formatPct(last?.memory_percent)}, disk {formatPct(last?.disk_percent)}
            {last?.temperature_c != null ? `, ${last.temperature_c.toFixed(0)} °C` : ''} {last ? `at ${formatDateTime(last.at)}` : ''}
          </p>
        </Card>
        <Card
          title="Traffic"
          actions={
            ifNames.length ? (
              <Select aria-label="Interface" value={ifName} onChange={(e) => setIface(e.target.value)} className="!w-40 !py-0.5">
                {ifNames.map((n) => (
                  <option key={n}>{n}</option>
                ))}
              </Select>
            ) : undefined
          }
        >
          {hist.isPending ? (
            <Skeleton className="h-40 w-full" />
          ) : (
            <LineChart
              label="Traffic"
              format={formatBps}
              series={[
                { name: 'rx', colour: 'stroke-sky-500', points: (traffic[ifName] ?? []).map((p) => ({ t: p.t, v: p.rx })) },
                { name: 'tx', colour: 'stroke-rose-500', points: (traffic[ifName] ?? []).map((p) => ({ t: p.t, v: p.tx })) },
              ]}
            />
          )}
        </Card>
      </div>
      <div className="grid gap-4 lg:grid-cols-2">
        <Card title="Interfaces">
          {hist.isPending ? (
            <SkeletonRows rows={4} />
          ) : !ifaces.length ? (
            <Empty>No interface data yet.</Empty>
          ) : (
            <Table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th>State</th>
                  <th className="text-right">Rx</th>
                  <th className="text-right">Tx</th>
                </tr>
              </thead>
              <tbody>
                {ifaces.map((i) => (
                  <tr key={i.name}>
                    <td className="font-medium">{i.name}</td>
                    <td>{i.running === false ? <Badge>down</Badge> : i.running ? <Badge className="!bg-emerald-100 !text-emerald-800 dark:!bg-emerald-500/15 dark:!text-emerald-300">running</Badge> : '—'}</td>
                    <td className="text-right tabular-nums">{formatBps(i.rx_bps)}</td>
                    <td className="text-right tabular-nums">{formatBps(i.tx_bps)}</td>
                  </tr>
                ))}
              </tbody>
            </Table>
          )}
        </Card>
        <Card title="Recent events">
          <EventList events={events} tenantId={tenantId} limit={10} />
          <h3 className="mb-1 mt-4 text-xs font-semibold uppercase tracking-wide text-slate-500">Status history</h3>
          {history.isPending ? (
            <SkeletonRows rows={3} />
          ) : history.isError ? (
            <InlineError error={history.error} />
          ) : !history.data.length ? (
            <p className="text-sm text-slate-500">No status changes recorded.</p>
          ) : (
            <ul className="divide-y divide-slate-100 text-sm dark:divide-slate-800" data-testid="status-history">
              {history.data.slice(0, 10).map((h, i) => (
                <li key={`${h.at}-${i}`} className="flex items-center gap-2 py-1.5">
                  <StatusBadge status={h.status} />
                  <span className="min-w-0 flex-1 truncate text-slate-600 dark:text-slate-400">{h.reason ?? ''}</span>
                  <span className="shrink-0 text-xs text-slate-500" title={formatDateTime(h.at)}>{formatRelative(h.at)}</span>
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>
      {can(me.role, 'operate') && <CommandRunner tenantId={tenantId} deviceId={deviceId} />}
      {confirmDelete && (
        <Modal title="Delete device" onClose={() => setConfirmDelete(false)}>
          <p className="text-sm">Delete {d?.name} and stop polling it?</p>
          <InlineError error={mut.remove.error} />
          <div className="mt-4 flex justify-end gap-2">
            <Button onClick={() => setConfirmDelete(false)}>Cancel</Button>
            <Button
              variant="danger"
              busy={mut.remove.isPending}
              onClick={() => mut.remove.mutateAsync(deviceId).then(() => navigate({ to: '/t/$tenantId/devices', params: { tenantId } }), () => undefined)}
            >
              Delete
            </Button>
          </div>
        </Modal>
      )}
    </div>
  );
}

function CommandRunner({ tenantId, deviceId }: { tenantId: string; deviceId: string }) {
  const run = useRunCommand(tenantId, deviceId);
  const [path, setPath] = useState('/system/resource');
  const [action, setAction] = useState('print');
  const [params, setParams] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const [result, setResult] = useState<CommandResult | null>(null);
  const out = useRef<HTMLDivElement>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    let menu = path.trim().replace(/\/+$/, '');
    // Accept "/interface/print" typed whole: the last word becomes the action.
    const tail = menu.split('/').at(-1)!;
    let act = action as CommandBody['action'];
    if (['print', 'add', 'set', 'remove'].includes(tail)) {
      act = tail as CommandBody['action'];
      menu = menu.slice(0, -tail.length - 1);
    }
    if (!/^(\/[a-z0-9-]+)+$/.test(menu)) return setErr('A RouterOS menu path such as /interface or /ip/address.');
    const p: Record<string, string> = {};
    const filters: Record<string, string> = {};
    for (const line of params.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const isFilter = line.startsWith('?');
      const body = isFilter ? line.slice(1) : line;
      const i = body.indexOf('=');
      if (i <= 0) return setErr(`"${line}" is not key=value (or ?key=value for a print filter)`);
      (isFilter ? filters : p)[body.slice(0, i).trim()] = body.slice(i + 1).trim();
    }
    setResult(null);
    const r = await run.mutateAsync({ path: menu, action: act, params: p, filters }).catch(() => null);
    if (r) {
      setResult(r);
      setTimeout(() => out.current?.scrollIntoView({ block: 'nearest' }), 0);
    }
  };
  const cols = useMemo(() => {
    const s = new Set<string>();
    result?.rows.forEach((r) => Object.keys(r).forEach((k) => s.add(k)));
    // The identifying columns first, then the rest as RouterOS sent them (up to 16).
    const first = ['.id', 'name', 'type', 'address', 'interface', 'disabled', 'running', 'comment'].filter((k) => s.has(k));
    return [...first, ...[...s].filter((k) => !first.includes(k))].slice(0, 16);
  }, [result]);
  return (
    <Card title="Run a command">
      <form onSubmit={submit} noValidate className="grid gap-3 md:grid-cols-[1fr_8rem_1fr_auto] md:items-end" data-testid="command-form">
        <Field label="Menu path" error={err}>
          <Input name="path" value={path} onChange={(e) => setPath(e.target.value)} className="font-mono" />
        </Field>
        <Field label="Action">
          <Select name="action" value={action} onChange={(e) => setAction(e.target.value)}>
            {['print', 'add', 'set', 'remove'].map((a) => (
              <option key={a}>{a}</option>
            ))}
          </Select>
        </Field>
        <Field label="key=value per line; ?key=value filters a print">
          <textarea
            name="params"
            rows={1}
            value={params}
            onChange={(e) => setParams(e.target.value)}
            className="w-full rounded-md border border-slate-300 bg-white px-2.5 py-1.5 font-mono text-sm dark:border-slate-700 dark:bg-slate-900"
          />
        </Field>
        <Button type="submit" variant="primary" busy={run.isPending}>
          Run
        </Button>
      </form>
      <InlineError error={run.error} />
      {result && (
        <div ref={out} className="mt-3" data-testid="command-result">
          <p className="mb-1 text-xs text-slate-500">
            {result.rows.length} row{result.rows.length === 1 ? '' : 's'}
            {Object.keys(result.done ?? {}).length ? ` · done: ${Object.entries(result.done).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}
          </p>
          {cols.length > 0 && (
            <Table>
              <thead>
                <tr>
                  {cols.map((c) => (
                    <th key={c} className="whitespace-nowrap !normal-case">{c}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {result.rows.map((r, i) => (
                  <tr key={i}>
                    {cols.map((c) => (
                      <td key={c} className="whitespace-nowrap font-mono text-xs">{r[c] ?? ''}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </Table>
          )}
        </div>
      )}
    </Card>
  );
}
