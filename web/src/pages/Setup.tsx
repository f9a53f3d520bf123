// First run: create the first tenant, add a device or a subnet, and watch them come online.
import { useState, type FormEvent } from 'react';
import { Link } from '@tanstack/react-router';
import { useQuery } from '@tanstack/react-query';
import { get } from '../api/client';
import { useDeviceMutations, useMe, useTenantMutations, useTenants } from '../api/hooks';
import type { Device, Page } from '../api/types';
import type { TlsMode } from '../api/types';
import { Button, Card, Field, Input, InlineError, PageHeader, Select, StatusBadge, cx } from '../components/ui';
import { TransportSelect } from '../components/TransportSelect';
import { cidrHosts, isValidHost } from '../lib/format';
import { liveStatusOf, useLiveVersion } from '../lib/live';
import { can } from '../lib/roles';
import { liveStream } from '../lib/sse';
import { rememberTenant } from '../lib/tenantPref';

export default function SetupPage() {
  const me = useMe().data!;
  const tenants = useTenants(can(me.role, 'super'));
  const [tenantId, setTenantId] = useState<string | null>(me.tenant_id ?? null);
  const [added, setAdded] = useState<string[] | null>(null);
  const step = !tenantId ? 1 : !added ? 2 : 3;
  return (
    <div className="mx-auto max-w-3xl space-y-4">
      <PageHeader title="Set up drover" subtitle="Three steps: a tenant, your first devices, and watching them come online." />
      <ol className="flex gap-2 text-sm">
        {['Tenant', 'Devices', 'Online'].map((s, i) => (
          <li key={s} className={cx('flex-1 rounded-md border px-3 py-2', step === i + 1 ? 'border-teal-500 bg-teal-600/10 font-medium' : 'border-slate-200 text-slate-500 dark:border-slate-800')}>
            {i + 1}. {s}
          </li>
        ))}
      </ol>
      {step === 1 && <TenantStep existing={tenants.data ?? []} onDone={(id) => { setTenantId(id); rememberTenant(id); liveStream.start(id); }} />}
      {step === 2 && tenantId && <DevicesStep tenantId={tenantId} onDone={setAdded} />}
      {step === 3 && tenantId && added && <ProgressStep tenantId={tenantId} hosts={added} />}
    </div>
  );
}

function TenantStep({ existing, onDone }: { existing: { id: string; name: string }[]; onDone: (id: string) => void }) {
  const m = useTenantMutations();
  const [name, setName] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (name.trim().length < 2) return setErr('A tenant name has at least 2 characters.');
    setErr(null);
    const t = await m.create.mutateAsync({ name: name.trim() }).catch(() => null);
    if (t) onDone(t.id);
  };
  return (
    <Card title="Create the first tenant">
      <form onSubmit={submit} noValidate className="space-y-3">
        <p className="text-sm text-slate-600 dark:text-slate-400">A tenant is one organisation's fleet: its devices, users and audit log are kept apart from every other tenant's.</p>
        <Field label="Tenant name" error={err}>
          <Input name="tenantName" value={name} onChange={(e) => setName(e.target.value)} placeholder="Acme Networks" />
        </Field>
        <InlineError error={m.create.error} />
        <div className="flex items-center gap-2">
          <Button type="submit" variant="primary" busy={m.create.isPending}>Create tenant</Button>
          {existing.length > 0 && (
            <Select aria-label="Use an existing tenant" className="!w-72" value="" onChange={(e) => e.target.value && onDone(e.target.value)}>
              <option value="">…or use an existing tenant</option>
              {existing.map((t) => (
                <option key={t.id} value={t.id}>{t.name}</option>
              ))}
            </Select>
          )}
        </div>
      </form>
    </Card>
  );
}

function DevicesStep({ tenantId, onDone }: { tenantId: string; onDone: (hosts: string[]) => void }) {
  const m = useDeviceMutations(tenantId);
  const [mode, setMode] = useState<'one' | 'subnet'>('one');
  const [f, setF] = useState({ name: '', host: '', subnet: '', port: '8729', tls: 'verify' as TlsMode, username: 'admin', password: '' });
  const [errs, setErrs] = useState<Record<string, string>>({});
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const er: Record<string, string> = {};
    const port = Number(f.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) er.port = 'A port is 1 to 65535.';
    if (!f.username.trim()) er.username = 'Enter the RouterOS API user.';
    let hosts: string[] = [];
    if (mode === 'one') {
      if (!isValidHost(f.host)) er.host = 'Enter an IP address or host name.';
      hosts = [f.host.trim()];
    } else {
      try {
        hosts = cidrHosts(f.subnet, 500);
      } catch (x) {
        er.subnet = (x as Error).message.replace('1024', '500');
      }
    }
    setErrs(er);
    if (Object.keys(er).length) return;
    const base = { api_port: port, tls_mode: f.tls, username: f.username.trim(), password: f.password };
    if (mode === 'one') {
      const d = await m.create.mutateAsync({ ...base, address: hosts[0], name: f.name.trim() || hosts[0] }).catch(() => null);
      if (d) onDone(hosts);
    } else {
      const devices = hosts.map((h) => ({ address: h, name: h, api_port: port }));
      const ok = await m.bulkCreate.mutateAsync({ devices, tls_mode: f.tls, username: base.username, password: base.password }).then(() => true, () => false);
      if (ok) onDone(hosts);
    }
  };
  return (
    <Card title="Add your first devices">
      <form onSubmit={submit} noValidate className="space-y-3">
        <div className="flex gap-4 text-sm">
          <label className="flex items-center gap-1.5"><input type="radio" checked={mode === 'one'} onChange={() => setMode('one')} /> One device</label>
          <label className="flex items-center gap-1.5"><input type="radio" checked={mode === 'subnet'} onChange={() => setMode('subnet')} /> A subnet (up to 500 hosts)</label>
        </div>
        {mode === 'one' ? (
          <div className="grid grid-cols-2 gap-2">
            <Field label="Address" error={errs.host}><Input name="host" value={f.host} placeholder="192.168.88.1" onChange={(e) => setF({ ...f, host: e.target.value })} /></Field>
            <Field label="Name (optional)"><Input name="name" value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} /></Field>
          </div>
        ) : (
          <Field label="Subnet" error={errs.subnet} hint="Every address in it is added; those that answer come online."><Input name="subnet" value={f.subnet} placeholder="10.10.0.0/24" onChange={(e) => setF({ ...f, subnet: e.target.value })} /></Field>
        )}
        <Field label="Transport"><TransportSelect value={f.tls} onChange={(tls, port) => setF({ ...f, tls, port })} /></Field>
        <div className="grid grid-cols-3 gap-2">
          <Field label="API port" error={errs.port}><Input name="port" value={f.port} onChange={(e) => setF({ ...f, port: e.target.value })} /></Field>
          <Field label="User" error={errs.username}><Input name="username" value={f.username} onChange={(e) => setF({ ...f, username: e.target.value })} /></Field>
          <Field label="Password"><Input name="devicePassword" type="password" autoComplete="new-password" value={f.password} onChange={(e) => setF({ ...f, password: e.target.value })} /></Field>
        </div>
        <InlineError error={m.create.error ?? m.bulkCreate.error} />
        <Button type="submit" variant="primary" busy={m.create.isPending || m.bulkCreate.isPending}>Add and connect</Button>
      </form>
    </Card>
  );
}

function ProgressStep({ tenantId, hosts }: { tenantId: string; hosts: string[] }) {
  useLiveVersion();
  const list = useQuery({
    queryKey: ['setup-progress', tenantId],
    queryFn: () => get<Page<Device>>(`/tenants/${tenantId}/devices`, { limit: 500, sort: 'address' }),
    refetchInterval: 3000,
  });
  const mine = (list.data?.items ?? []).filter((d) => hosts.includes(d.address));
  const statusOf = (d: Device) => liveStatusOf(d.id)?.status ?? d.status;
  const online = mine.filter((d) => statusOf(d) === 'online').length;
  const pct = hosts.length ? Math.round((online / hosts.length) * 100) : 0;
  return (
    <Card title="Connecting">
      <p className="text-sm" data-testid="setup-progress">{online} of {hosts.length} online</p>
      <div className="mt-2 h-2 overflow-hidden rounded bg-slate-200 dark:bg-slate-800">
        <div className="h-full bg-teal-500 transition-all" style={{ width: `${pct}%` }} />
      </div>
      <ul className="mt-3 max-h-72 divide-y divide-slate-100 overflow-auto text-sm dark:divide-slate-800">
        {mine.slice(0, 200).map((d) => (
          <li key={d.id} className="flex items-center justify-between py-1">
            <span className="font-mono text-xs">{d.address}</span>
            <span className="flex items-center gap-2 text-xs text-slate-500">{d.status_reason}<StatusBadge status={statusOf(d)} /></span>
          </li>
        ))}
      </ul>
      <div className="mt-4 flex gap-2">
        <Link to="/t/$tenantId" params={{ tenantId }}><Button variant="primary">Go to the dashboard</Button></Link>
        <Link to="/t/$tenantId/devices" params={{ tenantId }}><Button>Open the fleet table</Button></Link>
      </div>
    </Card>
  );
}
