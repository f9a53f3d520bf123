// The fleet table: server-side search, sort and filters; rows fetched in pages of 200
// as they scroll into view; only visible rows are in the DOM (@tanstack/react-virtual),
// so 100,000 devices scroll like 100. Live status comes from the event stream overlay.
import { memo, useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { useNavigate, useParams, useSearch } from '@tanstack/react-router';
import { useQueries } from '@tanstack/react-query';
import { useVirtualizer } from '@tanstack/react-virtual';
import { devicePageQuery, useDeviceMutations, useGroups, useMe, useNamedMutations, useSites, useTags, type DeviceFilters } from '../api/hooks';
import { DEVICE_STATUSES, type Device, type NewDevice } from '../api/types';
import type { TlsMode } from '../api/types';
import { Button, cx, ErrorState, Field, Input, InlineError, Modal, PageHeader, Select, Skeleton, StatusBadge, Badge } from '../components/ui';
import { TransportSelect } from '../components/TransportSelect';
import { formatPct, formatRelative, formatUptime, isValidHost, formatCount } from '../lib/format';
import { liveMetricsOf, liveStatusOf, useLiveVersion } from '../lib/live';
import { can } from '../lib/roles';

const PAGE = 200;
const ROW = 40;
// Rows are keyed by slot (index mod SLOTS, more than ever visible at once), so scrolling
// reuses DOM nodes instead of unmounting and creating rows.
const SLOTS = 128;

const COLUMNS: { key: string; label: string; sort?: DeviceFilters['sort']; cls: string }[] = [
  { key: 'name', label: 'Name', sort: 'name', cls: 'w-[22%]' },
  { key: 'status', label: 'Status', sort: 'status', cls: 'w-[10%]' },
  { key: 'host', label: 'Address', sort: 'address', cls: 'w-[14%]' },
  { key: 'version', label: 'Version', cls: 'w-[10%]' },
  { key: 'board', label: 'Board', cls: 'w-[12%]' },
  { key: 'cpu', label: 'CPU', cls: 'w-[6%] text-right' },
  { key: 'uptime', label: 'Uptime', cls: 'w-[9%]' },
  { key: 'tags', label: 'Tags', cls: 'w-[12%]' },
  { key: 'seen', label: 'Last seen', sort: 'last_seen', cls: 'w-[9%]' },
];

const Row = memo(function Row({
  d,
  index,
  selected,
  selectable,
  onSelect,
  tenantId,
  top,
}: {
  d: Device | undefined;
  index: number;
  selected: boolean;
  selectable: boolean;
  onSelect: (id: string, index: number, shift: boolean) => void;
  tenantId: string;
  top: number;
  v: number;
}) {
  const cls = 'absolute left-0 flex w-full items-center border-b border-slate-100 text-sm [contain:layout_style] dark:border-slate-800/70';
  if (!d)
    return (
      <div className={cls} style={{ height: ROW, transform: `translateY(${top}px)` }} data-row={index}>
        <div className="w-10 shrink-0" />
        <Skeleton className="mx-3 h-3.5 w-1/3" />
      </div>
    );
  const live = liveStatusOf(d.id);
  const lm = liveMetricsOf(d.id);
  const status = live?.status ?? d.status;
  return (
    <div
      className={cx(cls, selected ? 'bg-teal-50 dark:bg-teal-500/10' : 'hover:bg-slate-50 dark:hover:bg-slate-800/40')}
      style={{ height: ROW, transform: `translateY(${top}px)` }}
      data-row={index}
      data-device-id={d.id}
    >
      <div className="flex w-10 shrink-0 justify-center">
        {selectable && (
          <input
            type="checkbox"
            aria-label={`Select ${d.name}`}
            checked={selected}
            onChange={() => undefined}
            onClick={(e) => onSelect(d.id, index, e.shiftKey)}
          />
        )}
      </div>
      <div className={cx(COLUMNS[0].cls, 'truncate px-3 font-medium')}>
        {/* A plain anchor: a router <Link> per row costs a location build on every render. */}
        <a href={`/t/${tenantId}/devices/${d.id}`} data-nav className="hover:underline">
          {d.name}
        </a>
      </div>
      <div className={cx(COLUMNS[1].cls, 'px-3')} data-testid="row-status">
        <StatusBadge status={status} />
      </div>
      <div className={cx(COLUMNS[2].cls, 'truncate px-3 font-mono text-xs')}>{d.address}{d.api_port && d.api_port !== 8728 && d.api_port !== 8729 ? `:${d.api_port}` : ''}</div>
      <div className={cx(COLUMNS[3].cls, 'truncate px-3')}>{d.routeros_version ?? '—'}</div>
      <div className={cx(COLUMNS[4].cls, 'truncate px-3')}>{d.board_name ?? '—'}</div>
      <div className={cx(COLUMNS[5].cls, 'px-3 tabular-nums')}>{formatPct(lm?.cpu_percent ?? d.cpu_percent)}</div>
      <div className={cx(COLUMNS[6].cls, 'truncate px-3')}>{formatUptime(lm?.uptime_s ?? d.uptime_s)}</div>
      <div className={cx(COLUMNS[7].cls, 'flex gap-1 overflow-hidden px-3')}>
        {(d.tags ?? []).slice(0, 3).map((t) => (
          <Badge key={t}>{t}</Badge>
        ))}
      </div>
      <div className={cx(COLUMNS[8].cls, 'truncate px-3 text-xs text-slate-500')}>{formatRelative(d.last_seen_at)}</div>
    </div>
  );
});

export default function FleetPage() {
  const { tenantId } = useParams({ strict: false }) as { tenantId: string };
  const search = useSearch({ strict: false }) as DeviceFilters;
  const navigate = useNavigate();
  const me = useMe().data!;
  const mayEdit = can(me.role, 'operate');
  const tags = useTags(tenantId);
  const groups = useGroups(tenantId);
  const sites = useSites(tenantId);
  const [q, setQ] = useState(search.q ?? '');
  const filters: DeviceFilters = useMemo(
    () => ({ q: search.q, status: search.status, tag: search.tag, group: search.group, site: search.site, sort: search.sort, order: search.order }),
    [search.q, search.status, search.tag, search.group, search.site, search.sort, search.order],
  );
  const setFilter = useCallback(
    (patch: Partial<DeviceFilters>) =>
      navigate({ to: '/t/$tenantId/devices', params: { tenantId }, search: (prev: Record<string, unknown>) => ({ ...prev, ...patch }), replace: true }),
    [navigate, tenantId],
  );
  useEffect(() => {
    const t = setTimeout(() => {
      if ((search.q ?? '') !== q) setFilter({ q: q || undefined });
    }, 250);
    return () => clearTimeout(t);
  }, [q, search.q, setFilter]);

  const scrollRef = useRef<HTMLDivElement>(null);
  // The number of matching devices, and whether it is exact or (until a page with the exact
  // total arrives) a lower bound.
  const [totalInfo, setTotalInfo] = useState<{ n: number; exact: boolean } | null>(null);
  const total = totalInfo?.n ?? null;
  const totalExact = totalInfo?.exact ?? true;
  const [range, setRange] = useState<[number, number]>([0, 0]);
  const pages = useMemo(() => {
    const first = Math.floor(range[0] / PAGE);
    const last = Math.floor(Math.max(range[0], range[1]) / PAGE);
    const out: number[] = [];
    for (let p = first; p <= last; p++) out.push(p);
    return out;
  }, [range]);
  const queries = useMemo(() => pages.map((p) => devicePageQuery(tenantId, filters, p, PAGE)), [pages, tenantId, filters]);
  const results = useQueries({ queries });
  const byPage = new Map<number, Device[]>();
  results.forEach((r, i) => r.data && byPage.set(pages[i], r.data.items));
  // The first page carries the exact total; later pages only a lower bound (or the exact
  // total on the last page). A lower bound never replaces a known exact total.
  useEffect(() => setTotalInfo(null), [filters]); // before the effect below: cached pages refill it
  const exactPage = results.find((r) => r.data && r.data.total_is_exact !== false)?.data;
  const boundPage = results.find((r) => r.data)?.data;
  useEffect(() => {
    if (exactPage) setTotalInfo({ n: exactPage.total, exact: true });
    else if (boundPage) setTotalInfo((prev) => (prev?.exact ? prev : { n: Math.max(prev?.n ?? 0, boundPage.total), exact: false }));
  }, [exactPage, boundPage]);
  const error = results.find((r) => r.isError)?.error;

  const count = total ?? 0;
  const virt = useVirtualizer({
    count: total == null ? 20 : count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW,
    overscan: 8,
    // Render on React's schedule rather than synchronously inside every scroll event.
    useFlushSync: false,
  });
  const items = virt.getVirtualItems();
  const r0 = items[0]?.index ?? 0;
  const r1 = items.at(-1)?.index ?? 0;
  useEffect(() => {
    setRange((prev) => (prev[0] === r0 && prev[1] === r1 ? prev : [r0, r1]));
  }, [r0, r1]);
  useEffect(() => {
    scrollRef.current?.scrollTo({ top: 0 });
  }, [filters]);

  const rowAt = (i: number) => byPage.get(Math.floor(i / PAGE))?.[i % PAGE];
  const v = useLiveVersion();

  // Selection: ids; shift-click selects a range of loaded rows.
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const lastClick = useRef<number | null>(null);
  const rowAtRef = useRef(rowAt);
  rowAtRef.current = rowAt;
  const onSelect = useCallback((id: string, index: number, shift: boolean) => {
    setSelected((prev) => {
      const next = new Set(prev);
      if (shift && lastClick.current != null) {
        const [a, b] = [Math.min(lastClick.current, index), Math.max(lastClick.current, index)];
        for (let i = a; i <= b; i++) {
          const d = rowAtRef.current(i);
          if (d) next.add(d.id);
        }
      } else if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
    lastClick.current = index;
  }, []);
  useEffect(() => setSelected(new Set()), [filters]);
  const selectLoaded = () => {
    const next = new Set(selected);
    byPage.forEach((rows) => rows.forEach((d) => next.size < 500 && next.add(d.id)));
    setSelected(next);
  };

  const sortBy = (key?: DeviceFilters['sort']) => {
    if (!key) return;
    const order = filters.sort === key && filters.order !== 'desc' ? 'desc' : 'asc';
    setFilter({ sort: key, order });
  };

  const [adding, setAdding] = useState(false);
  const [bulk, setBulk] = useState<null | 'tag' | 'untag' | 'group' | 'delete'>(null);

  return (
    <div className="flex h-full flex-col">
      <PageHeader
        title="Devices"
        subtitle={total == null ? 'Loading…' : `${totalExact ? '' : 'at least '}${formatCount(total)} device${total === 1 ? '' : 's'}${filters.q || filters.status || filters.tag || filters.group || filters.site ? ' match' : ''}`}
        actions={mayEdit && <Button variant="primary" onClick={() => setAdding(true)}>Add device</Button>}
      />
      <div className="mb-3 flex flex-wrap items-center gap-2">
        <Input aria-label="Search devices" placeholder="Search name or address…" value={q} onChange={(e) => setQ(e.target.value)} className="max-w-xs" />
        <Select aria-label="Status" value={filters.status ?? ''} onChange={(e) => setFilter({ status: e.target.value || undefined })} className="w-36">
          <option value="">Any status</option>
          {DEVICE_STATUSES.map((s) => (
            <option key={s} value={s}>{s.replace('_', ' ')}</option>
          ))}
        </Select>
        <Select aria-label="Tag" value={filters.tag ?? ''} onChange={(e) => setFilter({ tag: e.target.value || undefined })} className="w-36">
          <option value="">Any tag</option>
          {tags.data?.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </Select>
        <Select aria-label="Group" value={filters.group ?? ''} onChange={(e) => setFilter({ group: e.target.value || undefined })} className="w-36">
          <option value="">Any group</option>
          {groups.data?.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </Select>
        <Select aria-label="Site" value={filters.site ?? ''} onChange={(e) => setFilter({ site: e.target.value || undefined })} className="w-36">
          <option value="">Any site</option>
          {sites.data?.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </Select>
        {mayEdit && selected.size > 0 && (
          <div className="ml-auto flex flex-wrap items-center gap-2 rounded-md bg-teal-600/10 px-2 py-1 text-sm" data-testid="bulk-bar">
            <span>{selected.size} selected</span>
            <Button onClick={() => setBulk('tag')}>Add tag</Button>
            <Button onClick={() => setBulk('untag')}>Remove tag</Button>
            <Button onClick={() => setBulk('group')}>Set group</Button>
            <Button variant="danger" onClick={() => setBulk('delete')}>Delete</Button>
            <Button variant="ghost" onClick={() => setSelected(new Set())}>Clear</Button>
          </div>
        )}
        {mayEdit && selected.size === 0 && total != null && total > 0 && (
          <Button variant="ghost" className="ml-auto" onClick={selectLoaded}>Select loaded rows</Button>
        )}
      </div>
      {error ? (
        <ErrorState error={error} onRetry={() => results.forEach((r) => r.refetch())} />
      ) : (
        <div className="flex min-h-[300px] flex-1 flex-col overflow-hidden rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
          <div className="flex shrink-0 items-center border-b border-slate-200 bg-slate-50 text-xs font-medium uppercase tracking-wide text-slate-500 dark:border-slate-800 dark:bg-slate-900" role="row">
            <div className="w-10 shrink-0" />
            {COLUMNS.map((c) => (
              <div key={c.key} className={cx(c.cls, 'px-3 py-2')}>
                {c.sort ? (
                  <button onClick={() => sortBy(c.sort)} className="inline-flex items-center gap-1 uppercase hover:text-slate-800 dark:hover:text-slate-200" aria-label={`Sort by ${c.label}`}>
                    {c.label}
                    {filters.sort === c.sort && <span>{filters.order === 'desc' ? '▼' : '▲'}</span>}
                  </button>
                ) : (
                  c.label
                )}
              </div>
            ))}
          </div>
          <div
            ref={scrollRef}
            className="relative min-h-0 flex-1 overflow-auto [contain:strict]"
            data-testid="fleet-scroll"
            onClick={(e) => {
              const a = (e.target as HTMLElement).closest('a[data-nav]') as HTMLAnchorElement | null;
              if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
              e.preventDefault();
              navigate({ to: a.getAttribute('href')! });
            }}
          >
            {total === 0 ? (
              <p className="p-8 text-center text-sm text-slate-500">No devices match. {mayEdit && !filters.q && !filters.status ? 'Add one to get started.' : ''}</p>
            ) : (
              <div className="relative w-full" style={{ height: virt.getTotalSize() }} data-testid="fleet-rows">
                {items.map((it) => {
                  const d = rowAt(it.index);
                  return (
                    <Row
                      key={it.index % SLOTS}
                      d={d}
                      index={it.index}
                      top={it.start}
                      selected={!!d && selected.has(d.id)}
                      selectable={mayEdit}
                      onSelect={onSelect}
                      tenantId={tenantId}
                      v={d && (liveStatusOf(d.id) || liveMetricsOf(d.id)) ? v : 0}
                    />
                  );
                })}
              </div>
            )}
          </div>
        </div>
      )}
      {adding && <AddDevice tenantId={tenantId} onClose={() => setAdding(false)} />}
      {bulk && <BulkDialog tenantId={tenantId} kind={bulk} ids={[...selected]} onClose={(done) => {
        setBulk(null);
        if (done) setSelected(new Set());
      }} />}
    </div>
  );
}

export function AddDevice({ tenantId, onClose, onCreated }: { tenantId: string; onClose: () => void; onCreated?: (id: string) => void }) {
  const m = useDeviceMutations(tenantId);
  const tags = useTags(tenantId);
  const [f, setF] = useState({ name: '', host: '', port: '8729', tls: 'verify' as TlsMode, username: 'admin', password: '', tag: '' });
  const [errs, setErrs] = useState<Record<string, string>>({});
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const er: Record<string, string> = {};
    if (!f.name.trim()) er.name = 'Give the device a name.';
    if (!isValidHost(f.host)) er.host = 'Enter an IP address or host name.';
    const port = Number(f.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) er.port = 'A port is 1 to 65535.';
    if (!f.username.trim()) er.username = 'Enter the RouterOS API user.';
    setErrs(er);
    if (Object.keys(er).length) return;
    const body: NewDevice = {
      name: f.name.trim(),
      address: f.host.trim(),
      api_port: port,
      tls_mode: f.tls,
      username: f.username.trim(),
      password: f.password,
      tag_ids: f.tag ? [f.tag] : [],
    };
    const d = await m.create.mutateAsync(body).catch(() => null);
    if (d) {
      onCreated?.(d.id);
      onClose();
    }
  };
  return (
    <Modal title="Add device" onClose={onClose}>
      <form onSubmit={submit} noValidate className="space-y-3">
        <Field label="Name" error={errs.name}>
          <Input name="name" value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} />
        </Field>
        <div className="grid grid-cols-3 gap-2">
          <div className="col-span-2">
            <Field label="Address" error={errs.host}>
              <Input name="host" value={f.host} placeholder="192.168.88.1" onChange={(e) => setF({ ...f, host: e.target.value })} />
            </Field>
          </div>
          <Field label="API port" error={errs.port}>
            <Input name="port" inputMode="numeric" value={f.port} onChange={(e) => setF({ ...f, port: e.target.value })} />
          </Field>
        </div>
        <div className="grid grid-cols-2 gap-2">
          <Field label="Transport">
            <TransportSelect value={f.tls} onChange={(tls, port) => setF({ ...f, tls, port })} />
          </Field>
          <Field label="Tag">
            <Select name="tag" value={f.tag} onChange={(e) => setF({ ...f, tag: e.target.value })}>
              <option value="">None</option>
              {tags.data?.map((t) => (
                <option key={t.id} value={t.id}>{t.name}</option>
              ))}
            </Select>
          </Field>
        </div>
        <div className="grid grid-cols-2 gap-2">
          <Field label="User" error={errs.username}>
            <Input name="username" value={f.username} onChange={(e) => setF({ ...f, username: e.target.value })} />
          </Field>
          <Field label="Password">
            <Input name="devicePassword" type="password" autoComplete="new-password" value={f.password} onChange={(e) => setF({ ...f, password: e.target.value })} />
          </Field>
        </div>
        <InlineError error={m.create.error} />
        <div className="flex justify-end gap-2">
          <Button type="button" onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={m.create.isPending}>Add device</Button>
        </div>
      </form>
    </Modal>
  );
}

function BulkDialog({ tenantId, kind, ids, onClose }: { tenantId: string; kind: 'tag' | 'untag' | 'group' | 'delete'; ids: string[]; onClose: (done: boolean) => void }) {
  const m = useDeviceMutations(tenantId);
  const groups = useGroups(tenantId);
  const tags = useTags(tenantId);
  const tagMut = useNamedMutations(tenantId, 'tags');
  const [value, setValue] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const title = { tag: 'Add a tag', untag: 'Remove a tag', group: 'Move to a group', delete: 'Delete devices' }[kind];
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (kind !== 'delete' && !value.trim()) return setErr(kind === 'group' ? 'Choose a group.' : 'Enter a tag.');
    if (kind === 'tag' && !/^[\w.:-]{1,64}$/.test(value.trim())) return setErr('Tags are letters, digits, "_", "-", "." or ":" (up to 64).');
    setErr(null);
    let tagId = tags.data?.find((t) => t.name === value.trim() || t.id === value)?.id;
    if (kind === 'tag' && !tagId) {
      const created = await tagMut.create.mutateAsync(value.trim()).catch(() => null);
      if (!created) return;
      tagId = created.id;
    }
    if (kind === 'untag' && !tagId) return setErr('No tag has that name.');
    const body =
      kind === 'tag'
        ? { device_ids: ids, add_tag_ids: [tagId!] }
        : kind === 'untag'
          ? { device_ids: ids, remove_tag_ids: [tagId!] }
          : kind === 'group'
            ? { device_ids: ids, group_id: value }
            : { device_ids: ids, delete: true };
    const ok = await m.bulkUpdate.mutateAsync(body).then(() => true, () => false);
    if (ok) onClose(true);
  };
  return (
    <Modal title={title} onClose={() => onClose(false)}>
      <form onSubmit={submit} noValidate className="space-y-3">
        <p className="text-sm text-slate-600 dark:text-slate-400">
          {ids.length} device{ids.length === 1 ? '' : 's'} selected.
        </p>
        {(kind === 'tag' || kind === 'untag') && (
          <Field label="Tag" error={err} hint={kind === 'tag' ? 'An existing tag, or a new name to create it.' : undefined}>
            <Input value={value} list="bulk-tags" onChange={(e) => setValue(e.target.value)} />
            <datalist id="bulk-tags">
              {tags.data?.map((t) => <option key={t.id} value={t.name} />)}
            </datalist>
          </Field>
        )}
        {kind === 'group' && (
          <Field label="Group" error={err}>
            <Select value={value} onChange={(e) => setValue(e.target.value)}>
              <option value="">Choose…</option>
              {groups.data?.map((g) => (
                <option key={g.id} value={g.id}>
                  {g.name}
                </option>
              ))}
            </Select>
          </Field>
        )}
        {kind === 'delete' && <p className="text-sm text-red-700 dark:text-red-300">This removes the devices from drover and stops polling them. It cannot be undone.</p>}
        <InlineError error={m.bulkUpdate.error ?? tagMut.create.error} />
        <div className="flex justify-end gap-2">
          <Button type="button" onClick={() => onClose(false)}>Cancel</Button>
          <Button type="submit" variant={kind === 'delete' ? 'danger' : 'primary'} busy={m.bulkUpdate.isPending}>
            {kind === 'delete' ? `Delete ${ids.length}` : 'Apply'}
          </Button>
        </div>
      </form>
    </Modal>
  );
}
