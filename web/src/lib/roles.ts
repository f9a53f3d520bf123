import type { Role } from '../api/types';

const rank: Record<Role, number> = { viewer: 0, operator: 1, tenant_admin: 2, super_admin: 3 };

/** What a role may do in the UI. The API enforces the same rules; the UI only hides. */
export function can(role: Role | undefined, what: 'operate' | 'administer' | 'super'): boolean {
  if (!role) return false;
  const need = what === 'operate' ? 1 : what === 'administer' ? 2 : 3;
  return rank[role] >= need;
}

export const roleLabel: Record<Role, string> = {
  viewer: 'Viewer',
  operator: 'Operator',
  tenant_admin: 'Tenant admin',
  super_admin: 'Super admin',
};
