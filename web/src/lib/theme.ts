// Dark and light themes: a class on <html>, remembered in localStorage.
export type Theme = 'light' | 'dark';
const KEY = 'drover.theme';

export function currentTheme(): Theme {
  const saved = localStorage.getItem(KEY);
  if (saved === 'light' || saved === 'dark') return saved;
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}
export function applyTheme(t: Theme) {
  document.documentElement.classList.toggle('dark', t === 'dark');
  document.documentElement.style.colorScheme = t;
}
export function setTheme(t: Theme) {
  localStorage.setItem(KEY, t);
  applyTheme(t);
}
