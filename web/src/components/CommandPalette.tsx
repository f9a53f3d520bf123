import { useEffect, useMemo, useState } from 'react';
import { useNavigate } from '@tanstack/react-router';
import { useDeviceSearch } from '../api/hooks';
import type { Role } from '../api/types';
import { can } from '../lib/roles';
import { setTheme, currentTheme } from '../lib/theme';
import { cx, StatusBadge } from './ui';

interface Item {
  id: string;
  label: string;
  hint?: string;
  status?: string;
  run: () => void;
}

export function CommandPalette({ tenantId, role, onClose }: { tenantId?: string; role: Role; onClose: () => void }) {
  const navigate = useNavigate();
  const [q, setQ] = useState('');
  const [debounced, setDebounced] = useState('');
  const [sel, setSel] = useState(0);
  useEffect(() => {
    const t = setTimeout(() => setDebounced(q), 150);
    return () => clearTimeout(t);
  }, [q]);
  const devices = useDeviceSearch(tenantId, debounced);

  const items = useMemo(() => {
    const go = (to: string) => () => {
      navigate({ to, params: tenantId ? ({ tenantId } as never) : undefined });
      onClose();
    };
    const pages: Item[] = [];
    if (tenantId) {
      pages.push({ id: 'p-dash', label: 'Dashboard', hint: 'page', run: go('/t/$tenantId') });
      pages.push({ id: 'p-fleet', label: 'Devices', hint: 'page', run: go('/t/$tenantId/devices') });
      if (can(role, 'administer')) {
        pages.push({ id: 'p-users', label: 'Users', hint: 'page', run: go('/t/$tenantId/users') });
        pages.push({ id: 'p-keys', label: 'API keys', hint: 'page', run: go('/t/$tenantId/api-keys') });
        pages.push({ id: 'p-audit', label: 'Audit log', hint: 'page', run: go('/t/$tenantId/audit') });
      }
    }
    if (can(role, 'super')) {
      pages.push({ id: 'p-tenants', label: 'Tenants', hint: 'page', run: go('/tenants') });
      pages.push({ id: 'p-setup', label: 'First-run setup', hint: 'page', run: go('/setup') });
    }
    pages.push({ id: 'p-account', label: 'Account', hint: 'page', run: go('/account') });
    pages.push({
      id: 'a-theme',
      label: 'Toggle dark / light theme',
      hint: 'action',
      run: () => {
        setTheme(currentTheme() === 'dark' ? 'light' : 'dark');
        onClose();
      },
    });
    const needle = q.trim().toLowerCase();
    const matched = needle ? pages.filter((p) => p.label.toLowerCase().includes(needle)) : pages;
    const devs: Item[] =
      needle && tenantId
        ? (devices.data?.items ?? []).map((d) => ({
            id: `d-${d.id}`,
            label: d.name,
            hint: d.address,
            status: d.status,
            run: () => {
              navigate({ to: '/t/$tenantId/devices/$deviceId', params: { tenantId, deviceId: d.id } });
              onClose();
            },
          }))
        : [];
    return [...devs, ...matched];
  }, [q, devices.data, tenantId, role, navigate, onClose]);

  useEffect(() => setSel(0), [q]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') onClose();
      else if (e.key === 'ArrowDown') {
        e.preventDefault();
        setSel((s) => Math.min(items.length - 1, s + 1));
      } else if (e.key === 'ArrowUp') {
        e.preventDefault();
        setSel((s) => Math.max(0, s - 1));
      } else if (e.key === 'Enter') {
        e.preventDefault();
        items[sel]?.run();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [items, sel, onClose]);

  return (
    <div className="fixed inset-0 z-50 flex items-start justify-center bg-slate-950/50 p-4 pt-[12vh]" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div role="dialog" aria-label="Command palette" className="w-full max-w-lg overflow-hidden rounded-lg bg-white shadow-2xl dark:bg-slate-900">
        <input
          autoFocus
          value={q}
          onChange={(e) => setQ(e.target.value)}
          placeholder={tenantId ? 'Jump to a device or page…' : 'Jump to a page…'}
          className="w-full border-b border-slate-200 bg-transparent px-4 py-3 text-sm focus:outline-none dark:border-slate-800"
          aria-label="Search"
        />
        <ul className="max-h-80 overflow-y-auto py-1" role="listbox">
          {items.length === 0 && <li className="px-4 py-3 text-sm text-slate-500">{devices.isFetching ? 'Searching…' : 'Nothing matches.'}</li>}
          {items.map((it, i) => (
            <li
              key={it.id}
              role="option"
              aria-selected={i === sel}
              onMouseEnter={() => setSel(i)}
              onClick={it.run}
              className={cx('flex cursor-pointer items-center justify-between gap-2 px-4 py-2 text-sm', i === sel && 'bg-teal-600/10')}
            >
              <span className="truncate">{it.label}</span>
              <span className="flex items-center gap-2 text-xs text-slate-500">
                {it.status && <StatusBadge status={it.status} />}
                {it.hint}
              </span>
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}
