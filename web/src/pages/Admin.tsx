import { useState, type FormEvent } from 'react';
import { Link, useParams } from '@tanstack/react-router';
import { useApiKeyMutations, useApiKeys, useAudit, useMe, useTenantMutations, useTenants, useUserMutations, useUsers, type AuditFilters } from '../api/hooks';
import { ROLES, type Role } from '../api/types';
import { Badge, Button, Card, Empty, ErrorState, Field, Input, InlineError, Modal, PageHeader, Select, SkeletonRows, Table } from '../components/ui';
import { formatDateTime, formatRelative, isValidEmail } from '../lib/format';
import { can, roleLabel } from '../lib/roles';

const tid = () => (useParams({ strict: false }) as { tenantId: string }).tenantId;

function Forbidden() {
  return <ErrorState title="Not allowed" error={new Error('Your role cannot see this page.')} />;
}

export function TenantsPage() {
  const me = useMe().data!;
  const tenants = useTenants(can(me.role, 'super'));
  const m = useTenantMutations();
  const [name, setName] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const [del, setDel] = useState<{ id: string; name: string } | null>(null);
  const [edit, setEdit] = useState<{ id: string; name: string } | null>(null);
  if (!can(me.role, 'super')) return <Forbidden />;
  const create = async (e: FormEvent) => {
    e.preventDefault();
    if (name.trim().length < 2) return setErr('At least 2 characters.');
    setErr(null);
    if (await m.create.mutateAsync({ name: name.trim() }).then(() => true, () => false)) setName('');
  };
  return (
    <div className="space-y-4">
      <PageHeader title="Tenants" subtitle="Each tenant's fleet, users and audit log are isolated from the others." />
      <Card title="New tenant">
        <form onSubmit={create} noValidate className="flex items-start gap-2">
          <div className="flex-1"><Field label="Name" error={err}><Input name="tenantName" value={name} onChange={(e) => setName(e.target.value)} /></Field></div>
          <Button type="submit" variant="primary" className="mt-6" busy={m.create.isPending}>Create</Button>
        </form>
        <InlineError error={m.create.error} />
      </Card>
      <Card title="All tenants">
        {tenants.isPending ? <SkeletonRows /> : tenants.isError ? <ErrorState error={tenants.error} onRetry={() => tenants.refetch()} /> : !tenants.data.length ? <Empty>No tenants yet.</Empty> : (
          <Table>
            <thead><tr><th>Name</th><th>Poll interval</th><th>Created</th><th /></tr></thead>
            <tbody>
              {tenants.data.map((t) => (
                <tr key={t.id}>
                  <td><Link to="/t/$tenantId" params={{ tenantId: t.id }} className="font-medium hover:underline">{t.name}</Link></td>
                  <td>{t.default_poll_interval_s ? `${t.default_poll_interval_s} s` : '—'}</td>
                  <td>{formatDateTime(t.created_at)}</td>
                  <td className="text-right">
                    <Button variant="ghost" onClick={() => setEdit({ id: t.id, name: t.name })}>Rename</Button>
                    <Button variant="ghost" className="!text-red-600" onClick={() => setDel(t)}>Delete</Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
      </Card>
      {edit && (
        <Modal title="Rename tenant" onClose={() => setEdit(null)}>
          <form noValidate onSubmit={async (e) => { e.preventDefault(); if (edit.name.trim().length >= 2 && (await m.update.mutateAsync({ id: edit.id, name: edit.name.trim() }).then(() => true, () => false))) setEdit(null); }} className="space-y-3">
            <Field label="Name" error={edit.name.trim().length < 2 ? 'At least 2 characters.' : null}><Input value={edit.name} onChange={(e) => setEdit({ ...edit, name: e.target.value })} /></Field>
            <InlineError error={m.update.error} />
            <div className="flex justify-end gap-2"><Button type="button" onClick={() => setEdit(null)}>Cancel</Button><Button type="submit" variant="primary" busy={m.update.isPending}>Save</Button></div>
          </form>
        </Modal>
      )}
      {del && (
        <Modal title="Delete tenant" onClose={() => setDel(null)}>
          <p className="text-sm">Delete <b>{del.name}</b> with all its devices, users and history? This cannot be undone.</p>
          <InlineError error={m.remove.error} />
          <div className="mt-4 flex justify-end gap-2"><Button onClick={() => setDel(null)}>Cancel</Button><Button variant="danger" busy={m.remove.isPending} onClick={() => m.remove.mutateAsync(del.id).then(() => setDel(null), () => undefined)}>Delete</Button></div>
        </Modal>
      )}
    </div>
  );
}

function RoleSelect({ value, onChange, max, name }: { value: Role; onChange: (r: Role) => void; max: Role; name?: string }) {
  const allowed = ROLES.slice(0, ROLES.indexOf(max) + 1).filter((r) => r !== 'super_admin');
  return (
    <Select name={name} aria-label="Role" value={value} onChange={(e) => onChange(e.target.value as Role)}>
      {allowed.map((r) => <option key={r} value={r}>{roleLabel[r]}</option>)}
    </Select>
  );
}

export function UsersPage() {
  const tenantId = tid();
  const me = useMe().data!;
  const users = useUsers(tenantId);
  const m = useUserMutations(tenantId);
  const [open, setOpen] = useState(false);
  const [del, setDel] = useState<{ id: string; email: string } | null>(null);
  const [reset, setReset] = useState<{ id: string; email: string; password: string; err?: string } | null>(null);
  if (!can(me.role, 'administer')) return <Forbidden />;
  return (
    <div className="space-y-4">
      <PageHeader title="Users" subtitle="New users sign in once with the password you set, then choose their own and get a Secret Key." actions={<Button variant="primary" onClick={() => setOpen(true)}>Add user</Button>} />
      <Card>
        {users.isPending ? <SkeletonRows /> : users.isError ? <ErrorState error={users.error} onRetry={() => users.refetch()} /> : !users.data.length ? <Empty>No users.</Empty> : (
          <Table>
            <thead><tr><th>Name</th><th>Email</th><th>Role</th><th>Last sign-in</th><th /></tr></thead>
            <tbody>
              {users.data.map((u) => (
                <tr key={u.id} data-user={u.email}>
                  <td className="font-medium">{u.name ?? '—'}</td>
                  <td>
                    {u.email}
                    {u.must_enrol && <Badge className="ml-2">not enrolled</Badge>}
                    {u.is_active === false && <Badge className="ml-2">disabled</Badge>}
                  </td>
                  <td className="w-44">
                    {u.id === me.id || u.role === 'super_admin' ? roleLabel[u.role] : (
                      <RoleSelect value={u.role} max={me.role} onChange={(role) => m.update.mutate({ id: u.id, role })} />
                    )}
                  </td>
                  <td>{formatRelative(u.last_login_at)}</td>
                  <td className="whitespace-nowrap text-right">
                    {u.id !== me.id && u.role !== 'super_admin' && (
                      <>
                        <Button variant="ghost" onClick={() => setReset({ id: u.id, email: u.email, password: '' })}>Reset password</Button>
                        <Button variant="ghost" className="!text-red-600" onClick={() => setDel(u)}>Remove</Button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
        <InlineError error={m.update.error} />
      </Card>
      {open && <NewUser tenantId={tenantId} max={me.role} onClose={() => setOpen(false)} />}
      {reset && (
        <Modal title="Reset password" onClose={() => setReset(null)}>
          <form
            noValidate
            className="space-y-3"
            onSubmit={async (e) => {
              e.preventDefault();
              if (reset.password.length < 12) return setReset({ ...reset, err: 'At least 12 characters.' });
              if (await m.resetPassword.mutateAsync({ id: reset.id, password: reset.password }).then(() => true, () => false)) setReset(null);
            }}
          >
            <p className="text-sm text-slate-600 dark:text-slate-400">
              {reset.email} signs in once with this password, then chooses a new one and gets a new Secret Key. Their sessions end now.
            </p>
            <Field label="Temporary password" error={reset.err}>
              <Input type="password" autoComplete="new-password" value={reset.password} onChange={(e) => setReset({ ...reset, password: e.target.value, err: undefined })} />
            </Field>
            <InlineError error={m.resetPassword.error} />
            <div className="flex justify-end gap-2"><Button type="button" onClick={() => setReset(null)}>Cancel</Button><Button type="submit" variant="primary" busy={m.resetPassword.isPending}>Reset</Button></div>
          </form>
        </Modal>
      )}
      {del && (
        <Modal title="Remove user" onClose={() => setDel(null)}>
          <p className="text-sm">Remove {del.email}? Their sessions and API keys stop working.</p>
          <InlineError error={m.remove.error} />
          <div className="mt-4 flex justify-end gap-2"><Button onClick={() => setDel(null)}>Cancel</Button><Button variant="danger" busy={m.remove.isPending} onClick={() => m.remove.mutateAsync(del.id).then(() => setDel(null), () => undefined)}>Remove</Button></div>
        </Modal>
      )}
    </div>
  );
}

function NewUser({ tenantId, max, onClose }: { tenantId: string; max: Role; onClose: () => void }) {
  const m = useUserMutations(tenantId);
  const [f, setF] = useState({ email: '', name: '', role: 'viewer' as Role, password: '' });
  const [errs, setErrs] = useState<Record<string, string>>({});
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const er: Record<string, string> = {};
    if (!isValidEmail(f.email)) er.email = 'Enter a valid email address.';
    if (!f.name.trim()) er.name = 'Enter a name.';
    if (f.password.length < 12) er.password = 'At least 12 characters; the user replaces it at first sign-in.';
    setErrs(er);
    if (Object.keys(er).length) return;
    if (await m.create.mutateAsync({ ...f, email: f.email.trim().toLowerCase(), name: f.name.trim() }).then(() => true, () => false)) onClose();
  };
  return (
    <Modal title="Add user" onClose={onClose}>
      <form onSubmit={submit} noValidate className="space-y-3">
        <Field label="Email" error={errs.email}><Input name="email" type="email" value={f.email} onChange={(e) => setF({ ...f, email: e.target.value })} /></Field>
        <Field label="Name" error={errs.name}><Input name="name" value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} /></Field>
        <Field label="Role"><RoleSelect name="role" value={f.role} max={max} onChange={(role) => setF({ ...f, role })} /></Field>
        <Field label="Temporary password" error={errs.password}><Input name="password" type="password" autoComplete="new-password" value={f.password} onChange={(e) => setF({ ...f, password: e.target.value })} /></Field>
        <InlineError error={m.create.error} />
        <div className="flex justify-end gap-2"><Button type="button" onClick={onClose}>Cancel</Button><Button type="submit" variant="primary" busy={m.create.isPending}>Add user</Button></div>
      </form>
    </Modal>
  );
}

export function ApiKeysPage() {
  const tenantId = tid();
  const me = useMe().data!;
  const keys = useApiKeys(tenantId);
  const m = useApiKeyMutations(tenantId);
  const [f, setF] = useState({ name: '', role: 'viewer' as Role, expires: '' });
  const [err, setErr] = useState<string | null>(null);
  const [shown, setShown] = useState<{ key: string; name: string } | null>(null);
  const [copied, setCopied] = useState(false);
  if (!can(me.role, 'administer')) return <Forbidden />;
  const create = async (e: FormEvent) => {
    e.preventDefault();
    if (!f.name.trim()) return setErr('Name the key after what uses it.');
    if (f.expires && Date.parse(f.expires) <= Date.now()) return setErr('The expiry date is in the past.');
    setErr(null);
    const r = await m.create.mutateAsync({ name: f.name.trim(), role: f.role, expires_at: f.expires ? new Date(f.expires).toISOString() : undefined }).catch(() => null);
    if (r) {
      setShown({ key: r.key, name: f.name.trim() });
      setCopied(false);
      setF({ name: '', role: 'viewer', expires: '' });
    }
  };
  return (
    <div className="space-y-4">
      <PageHeader title="API keys" subtitle="For scripts and integrations. A key is shown once, when it is created." />
      <Card title="New key">
        <form onSubmit={create} noValidate className="grid gap-2 md:grid-cols-[1fr_12rem_12rem_auto] md:items-end">
          <Field label="Name" error={err}><Input name="keyName" value={f.name} onChange={(e) => setF({ ...f, name: e.target.value })} /></Field>
          <Field label="Role"><RoleSelect value={f.role} max={me.role} onChange={(role) => setF({ ...f, role })} /></Field>
          <Field label="Expires (optional)"><Input type="date" value={f.expires} onChange={(e) => setF({ ...f, expires: e.target.value })} /></Field>
          <Button type="submit" variant="primary" busy={m.create.isPending}>Create key</Button>
        </form>
        <InlineError error={m.create.error} />
      </Card>
      <Card title="Keys">
        {keys.isPending ? <SkeletonRows /> : keys.isError ? <ErrorState error={keys.error} onRetry={() => keys.refetch()} /> : !keys.data.length ? <Empty>No API keys.</Empty> : (
          <Table>
            <thead><tr><th>Name</th><th>Prefix</th><th>Role</th><th>Created</th><th>Expires</th><th>Last used</th><th /></tr></thead>
            <tbody>
              {keys.data.filter((k) => !k.revoked_at).map((k) => (
                <tr key={k.id}>
                  <td className="font-medium">{k.name}</td>
                  <td className="font-mono text-xs">{k.prefix}…</td>
                  <td>{roleLabel[k.role] ?? k.role}</td>
                  <td>{formatDateTime(k.created_at)}</td>
                  <td>{k.expires_at ? formatDateTime(k.expires_at) : 'never'}</td>
                  <td>{formatRelative(k.last_used_at)}</td>
                  <td className="text-right"><Button variant="ghost" className="!text-red-600" onClick={() => m.revoke.mutate(k.id)}>Revoke</Button></td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
        <InlineError error={m.revoke.error} />
      </Card>
      {shown && (
        <Modal title={`API key "${shown.name}"`} onClose={() => setShown(null)} wide>
          <p className="text-sm">Copy it now: drover stores only a hash and cannot show it again.</p>
          <pre className="mt-3 overflow-x-auto rounded bg-slate-100 p-3 font-mono text-sm dark:bg-slate-800" data-testid="new-api-key">{shown.key}</pre>
          <div className="mt-3 flex justify-end gap-2">
            <Button onClick={() => navigator.clipboard?.writeText(shown.key).then(() => setCopied(true), () => undefined)}>{copied ? 'Copied' : 'Copy'}</Button>
            <Button variant="primary" onClick={() => setShown(null)}>Done</Button>
          </div>
        </Modal>
      )}
    </div>
  );
}

export function AuditPage() {
  const tenantId = tid();
  const me = useMe().data!;
  const users = useUsers(tenantId);
  const [draft, setDraft] = useState<AuditFilters>({});
  const [filters, setFilters] = useState<AuditFilters>({});
  const [cursor, setCursor] = useState<number[]>([]);
  const audit = useAudit(tenantId, filters, cursor.at(-1));
  const emails = new Map((users.data ?? []).map((u) => [u.id, u.email]));
  if (!can(me.role, 'administer')) return <Forbidden />;
  const apply = (e: FormEvent) => {
    e.preventDefault();
    setCursor([]);
    setFilters({
      action: draft.action?.trim() || undefined,
      actor_id: draft.actor_id || undefined,
      from: draft.from ? new Date(draft.from).toISOString() : undefined,
      to: draft.to ? new Date(draft.to).toISOString() : undefined,
    });
  };
  const rows = audit.data?.items ?? [];
  const next = audit.data?.next_before_id;
  return (
    <div className="space-y-4">
      <PageHeader title="Audit log" subtitle="Every change and sign-in in this tenant, newest first." />
      <Card>
        <form onSubmit={apply} className="mb-4 grid gap-2 md:grid-cols-[1fr_1fr_1fr_1fr_auto] md:items-end">
          <Field label="Action"><Input placeholder="e.g. device.create" value={draft.action ?? ''} onChange={(e) => setDraft({ ...draft, action: e.target.value })} /></Field>
          <Field label="Actor">
            <Select value={draft.actor_id ?? ''} onChange={(e) => setDraft({ ...draft, actor_id: e.target.value })}>
              <option value="">Anyone</option>
              {users.data?.map((u) => <option key={u.id} value={u.id}>{u.email}</option>)}
            </Select>
          </Field>
          <Field label="From"><Input type="datetime-local" value={draft.from ?? ''} onChange={(e) => setDraft({ ...draft, from: e.target.value })} /></Field>
          <Field label="To"><Input type="datetime-local" value={draft.to ?? ''} onChange={(e) => setDraft({ ...draft, to: e.target.value })} /></Field>
          <Button type="submit">Filter</Button>
        </form>
        {audit.isPending ? <SkeletonRows /> : audit.isError ? <ErrorState error={audit.error} onRetry={() => audit.refetch()} /> : !rows.length ? <Empty>No entries match.</Empty> : (
          <Table>
            <thead><tr><th>When</th><th>Action</th><th>Actor</th><th>Target</th><th>From</th><th>Details</th></tr></thead>
            <tbody>
              {rows.map((a) => (
                <tr key={String(a.id)}>
                  <td className="whitespace-nowrap">{formatDateTime(a.at)}</td>
                  <td className="font-mono text-xs">{a.action}</td>
                  <td>{a.actor_id ? (emails.get(a.actor_id) ?? `${a.actor_kind ?? 'user'} ${a.actor_id.slice(0, 8)}`) : (a.actor_kind ?? 'system')}</td>
                  <td className="font-mono text-xs">{[a.resource_type, a.resource_id].filter(Boolean).join(' ')}</td>
                  <td className="font-mono text-xs">{a.ip_address ?? ''}</td>
                  <td className="max-w-xs truncate font-mono text-xs" title={a.details ? JSON.stringify(a.details) : ''}>{a.details ? JSON.stringify(a.details) : ''}</td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
        <div className="mt-3 flex justify-between">
          <Button disabled={!cursor.length} onClick={() => setCursor((c) => c.slice(0, -1))}>Newer</Button>
          <Button disabled={!next} onClick={() => next && setCursor((c) => [...c, next])}>Older</Button>
        </div>
      </Card>
    </div>
  );
}
