const KEY = 'drover.tenant';
export const rememberTenant = (id: string) => localStorage.setItem(KEY, id);
export const rememberedTenant = () => localStorage.getItem(KEY);
