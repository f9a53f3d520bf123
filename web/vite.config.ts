import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';
import tailwindcss from '@tailwindcss/vite';

// The built page must run under drover's CSP (script-src 'self'; style-src 'self'):
// no inline scripts, no <style> elements, so CSS is always emitted as a file and
// Vite's module-preload polyfill (an inline-free helper) is kept in the entry chunk.
export default defineConfig({
  plugins: [react(), tailwindcss()],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    sourcemap: false,
    cssCodeSplit: false,
    target: 'es2022',
    chunkSizeWarningLimit: 400,
  },
  worker: { format: 'es' },
  server: {
    proxy: {
      '/api': { target: process.env.DROVER_API ?? 'http://127.0.0.1:8080', changeOrigin: false },
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
    testTimeout: 30000,
  },
});
