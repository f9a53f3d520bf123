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
