import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from '@tanstack/react-router';
import { useDevice, useDeviceMutations, useInterfaces, useMe, useMetrics, useRunCommand } from '../api/hooks';
import type { CommandReply, InterfaceRate, MetricPoint } from '../api/types';
import { LineChart, type Series } from '../components/charts';
import { EventList } from '../components/EventList';
import { Button, Card, ErrorState, Field, Input, InlineError, Modal, PageHeader, Select, Skeleton, SkeletonRows, StatusBadge, Table, Badge, Empty } from '../components/ui';
import { formatBps, formatDateTime, formatPct, formatRelative, formatUptime } from '../lib/format';
import { liveStatusOf, useLiveVersion, useRecentEvents } from '../lib/live';
import { can } from '../lib/roles';
import { liveStream } from '../lib/sse';

const HOUR = 3600_000;

function useLiveMetrics(tenantId: string, deviceId: string) {
  const [from] = useState(() => new Date(Date.now() - HOUR).toISOString());
  const [to] = useState(() => new Date().toISOString());
  const hist = useMetrics(tenantId, deviceId, from, to);
  const [live, setLive] = useState<MetricPoint[]>([]);
  useEffect(
    () =>
      liveStream.subscribe((e) => {
        if (e.type !== 'metrics' || e.device_id !== deviceId) return;
        const d = e.data as Partial<MetricPoint>;
        const p: MetricPoint = {
          at: typeof d.at === 'string' ? d.at : new Date(e.receivedAt).toISOString(),
          cpu_load: d.cpu_load ?? null,
          memory_used_pct: d.memory_used_pct ?? null,
          disk_used_pct: d.disk_used_pct ?? null,
          temperature_c: d.temperature_c ?? null,
        };
        setLive((l) => [...l, p].slice(-720));
      }),
    [deviceId],
  );
  const points = useMemo(() => {
    const all = [...(hist.data?.points ?? []), ...live];
    const cutoff = Date.now() - HOUR;
    return all.map((p) => ({ ...p, t: Date.parse(p.at) })).filter((p) => p.t >= cutoff).sort((a, b) => a.t - b.t);
  }, [hist.data, live]);
  return { hist, points, liveCount: live.length };
}

function useTrafficHistory(ifaces: InterfaceRate[] | undefined, deviceId: string) {
  const [hist, setHist] = useState<Record<string, { t: number; rx: number | null; tx: number | null }[]>>({});
  useEffect(() => {
    if (!ifaces) return;
    const t = Date.now();
    setHist((h) => {
      const next = { ...h };
      for (const i of ifaces) next[i.name] = [...(next[i.name] ?? []), { t: i.at ? Date.parse(i.at) : t, rx: i.rx_bps, tx: i.tx_bps }].slice(-360);
      return next;
    });
  }, [ifaces]);
  useEffect(
    () =>
      liveStream.subscribe((e) => {
        if (e.type !== 'metrics' || e.device_id !== deviceId || !Array.isArray(e.data.interfaces)) return;
        const t = typeof e.data.at === 'string' ? Date.parse(e.data.at) : e.receivedAt;
        setHist((h) => {
          const next = { ...h };
          for (const i of e.data.interfaces as InterfaceRate[]) next[i.name] = [...(next[i.name] ?? []), { t, rx: i.rx_bps ?? null, tx: i.tx_bps ?? null }].slice(-360);
          return next;
        });
      }),
    [deviceId],
  );
  return hist;
}

export default function DevicePage() {
  const { tenantId, deviceId } = useParams({ strict: false }) as { tenantId: string; deviceId: string };
  const me = useMe().data!;
  const device = useDevice(tenantId, deviceId);
  const { hist, points, liveCount } = useLiveMetrics(tenantId, deviceId);
  const ifaces = useInterfaces(tenantId, deviceId);
  const traffic = useTrafficHistory(ifaces.data, deviceId);
  const [iface, setIface] = useState<string>('');
  const events = useRecentEvents().filter((e) => e.device_id === deviceId);
  useLiveVersion();
  const navigate = useNavigate();
  const mut = useDeviceMutations(tenantId);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [testResult, setTestResult] = useState<string | null>(null);

  const d = device.data;
  const live = liveStatusOf(deviceId);
  const status = live?.status ?? d?.status ?? 'unknown';
  const last = points.at(-1);
  const ifName = iface || ifaces.data?.find((i) => i.running !== false)?.name || ifaces.data?.[0]?.name || '';

  const series = (key: keyof MetricPoint, name: string, colour: string): Series => ({
    name,
    colour,
    points: points.map((p) => ({ t: p.t, v: p[key] as number | null })),
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
        subtitle={d ? `${d.host}${d.port ? `:${d.port}` : ''}${live?.reason || d.status_reason ? ` — ${live?.reason ?? d.status_reason}` : ''}` : undefined}
        actions={
          can(me.role, 'operate') && d ? (
            <>
              <Button
                busy={mut.testConnection.isPending}
                onClick={() =>
                  mut.testConnection.mutateAsync(deviceId).then(
                    (r) => setTestResult(`Connection OK${r && typeof r === 'object' && 'identity' in r ? `: ${String(r.identity)}` : ''}`),
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
          ['Identity', d?.identity],
          ['RouterOS', d?.version],
          ['Board', d?.board ?? d?.model],
          ['Uptime', d ? formatUptime(d.uptime_s) : undefined],
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
              series={[series('cpu_load', 'CPU', 'stroke-teal-500'), series('memory_used_pct', 'Memory', 'stroke-indigo-500'), series('disk_used_pct', 'Disk', 'stroke-amber-500')]}
            />
          )}
          <p className="mt-2 text-xs text-slate-500" data-testid="latest-cpu" data-value={last?.cpu_load ?? ''}>
            Latest: CPU {formatPct(last?.cpu_load)}, memory {formatPct(last?.memory_used_pct)}, disk {formatPct(last?.disk_used_pct)}
            {last?.temperature_c != null ? `, ${last.temperature_c.toFixed(0)} °C` : ''} {last ? `at ${formatDateTime(last.at)}` : ''}
          </p>
        </Card>
        <Card
          title="Traffic"
          actions={
            ifaces.data?.length ? (
              <Select aria-label="Interface" value={ifName} onChange={(e) => setIface(e.target.value)} className="!w-40 !py-0.5">
                {ifaces.data.map((i) => (
                  <option key={i.name}>{i.name}</option>
                ))}
              </Select>
            ) : undefined
          }
        >
          {ifaces.isPending ? (
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
          {ifaces.isPending ? (
            <SkeletonRows rows={4} />
          ) : ifaces.isError ? (
            <ErrorState error={ifaces.error} onRetry={() => ifaces.refetch()} />
          ) : !ifaces.data?.length ? (
            <Empty>No interface data yet.</Empty>
          ) : (
            <Table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Type</th>
                  <th>State</th>
                  <th className="text-right">Rx</th>
                  <th className="text-right">Tx</th>
                </tr>
              </thead>
              <tbody>
                {ifaces.data.map((i) => (
                  <tr key={i.name}>
                    <td className="font-medium">{i.name}</td>
                    <td>{i.type ?? '—'}</td>
                    <td>{i.disabled ? <Badge>disabled</Badge> : i.running === false ? <Badge>down</Badge> : i.running ? <Badge className="!bg-emerald-100 !text-emerald-800 dark:!bg-emerald-500/15 dark:!text-emerald-300">running</Badge> : '—'}</td>
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
  const [path, setPath] = useState('/system/resource/print');
  const [action, setAction] = useState('print');
  const [params, setParams] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const [replies, setReplies] = useState<CommandReply[] | null>(null);
  const out = useRef<HTMLDivElement>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    if (!/^(\/[a-z0-9-]+)+$/.test(path.trim())) return setErr('A RouterOS menu path such as /interface/print or /ip/address.');
    const p: Record<string, string> = {};
    for (const line of params.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const i = line.indexOf('=');
      if (i <= 0) return setErr(`"${line}" is not key=value`);
      p[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    let cmdPath = path.trim();
    // The API wants the menu path plus an action; accept "/x/y/print" typed whole.
    const tail = cmdPath.split('/').at(-1)!;
    if (['print', 'add', 'set', 'remove'].includes(tail)) cmdPath = cmdPath.slice(0, -tail.length - 1) + '/' + action;
    else cmdPath = `${cmdPath}/${action}`;
    setReplies(null);
    const r = await run.mutateAsync({ path: cmdPath, action, params: p }).catch(() => null);
    if (r) {
      setReplies(r.replies);
      setTimeout(() => out.current?.scrollIntoView({ block: 'nearest' }), 0);
    }
  };
  const cols = useMemo(() => {
    const s = new Set<string>();
    replies?.forEach((r) => Object.keys(r.attributes ?? {}).forEach((k) => s.add(k)));
    return [...s].slice(0, 12);
  }, [replies]);
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
        <Field label="Parameters (key=value per line)">
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
      {replies && (
        <div ref={out} className="mt-3" data-testid="command-result">
          <p className="mb-1 text-xs text-slate-500">{replies.length} repl{replies.length === 1 ? 'y' : 'ies'}</p>
          {cols.length ? (
            <Table>
              <thead>
                <tr>
                  <th>type</th>
                  {cols.map((c) => (
                    <th key={c} className="!normal-case">{c}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {replies.map((r, i) => (
                  <tr key={i}>
                    <td className="font-mono text-xs">{r.type}</td>
                    {cols.map((c) => (
                      <td key={c} className="font-mono text-xs">{r.attributes?.[c] ?? ''}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </Table>
          ) : (
            <pre className="overflow-auto rounded bg-slate-100 p-2 text-xs dark:bg-slate-800">{JSON.stringify(replies, null, 2)}</pre>
          )}
        </div>
      )}
    </Card>
  );
}
