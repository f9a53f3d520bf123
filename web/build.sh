#!/usr/bin/env bash
# Builds the web UI into web/dist. Installs dependencies from the committed lock file
# (npm ci, preferring the local npm cache) when node_modules is missing or older than
# package-lock.json, then runs `npm run build` (gen:api from api/openapi.json, tsc,
# vite build, initial-JS budget check). Usage: web/build.sh [--test] [--e2e]
#   --test  also runs the Vitest unit tests
set -euo pipefail
cd "$(dirname "$0")"

need_install=0
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ]; then
  need_install=1
elif [ package-lock.json -nt node_modules/.package-lock.json ]; then
  need_install=1
fi
if [ "$need_install" = 1 ]; then
  echo "web/build.sh: npm ci"
  npm ci --prefer-offline --no-audit --no-fund
fi

if [ "${1:-}" = "--test" ]; then
  npm test --silent
fi
npm run build --silent
echo "web/build.sh: built $(pwd)/dist"
