#!/usr/bin/env bash
# Installs what the tests need beyond Go on a fresh Debian machine: node and
# npm (for the interop test with Node's ws package), then the pinned ws
# package into bench/interop/testdata/node_modules. Idempotent and quiet:
# it does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "deps: installing nodejs and npm"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

dir=bench/interop/testdata
want=$(node -p "require('./$dir/package-lock.json').packages['node_modules/ws'].version")
have=$(node -p "try { require('./$dir/node_modules/ws/package.json').version } catch { '' }")
if [ "$have" != "$want" ]; then
  echo "deps: npm ci in $dir (ws $want)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
