// Prints the gzipped size of the initial JavaScript (the entry script and every chunk
// index.html preloads) and fails when it is over the budget (300 KB).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../dist');
const budget = Number(process.env.JS_BUDGET_KB ?? 300) * 1024;
const html = readFileSync(resolve(dist, 'index.html'), 'utf8');
const refs = new Set();
for (const m of html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)) refs.add(m[1]);
for (const m of html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="([^"]+)"/g)) refs.add(m[1]);
if (/<script(?![^>]*\ssrc=)[^>]*>/.test(html)) {
  console.error('size: index.html has an inline <script>, which the CSP forbids');
  process.exit(1);
}
if (/<style|\sstyle="/.test(html)) {
  console.error('size: index.html has inline styles, which the CSP forbids');
  process.exit(1);
}
let total = 0;
for (const ref of refs) {
  const buf = readFileSync(resolve(dist, '.' + ref));
  const gz = gzipSync(buf, { level: 9 }).length;
  total += gz;
  console.log(`  ${ref}  ${(buf.length / 1024).toFixed(1)} KB raw, ${(gz / 1024).toFixed(1)} KB gzipped`);
}
let all = 0;
for (const f of readdirSync(resolve(dist, 'assets'))) if (f.endsWith('.js')) all += statSync(resolve(dist, 'assets', f)).size;
console.log(`initial JS: ${(total / 1024).toFixed(1)} KB gzipped (budget ${budget / 1024} KB); all JS chunks: ${(all / 1024).toFixed(1)} KB raw`);
if (total > budget) {
  console.error('size: initial JS is over budget');
  process.exit(1);
}
