import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { RouterProvider } from '@tanstack/react-router';
import './index.css';
import { ApiError, onSessionExpired } from './api/client';
import { makeRouter } from './router';
import { applyTheme, currentTheme } from './lib/theme';
import { liveStream } from './lib/sse';

applyTheme(currentTheme());

// After an upgrade a tab still running the old build asks for chunks that no longer exist:
// reload once to pick up the new index.html instead of showing a broken page.
window.addEventListener('vite:preloadError', (e) => {
  const key = 'drover.reloadedForChunk';
  if (sessionStorage.getItem(key)) return;
  sessionStorage.setItem(key, '1');
  e.preventDefault();
  window.location.reload();
});

const queryClient = new QueryClient({
  queryCache: new QueryCache(),
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      refetchOnWindowFocus: false,
      retry: (count, err) => {
        if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) return false;
        return count < 2;
      },
    },
  },
});
const router = makeRouter(queryClient);

// Session expired (a 401 that a refresh could not fix): back to login, remembering the page.
onSessionExpired(() => {
  const loc = router.state.location;
  if (loc.pathname === '/login') return;
  liveStream.stop();
  router.navigate({ to: '/login', search: { redirect: loc.href, expired: 1 } });
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>
  </StrictMode>,
);
