#!/usr/bin/env bash
# Installs what the tests need beyond Go on a fresh Debian machine: node and
# npm (for the interop test with Node's ws package), the pinned ws package
# into bench/interop/testdata/node_modules, and Debian's chromium (for the
# headless browser test in bench/interop; large, so only when
# /usr/bin/chromium is missing). Idempotent and quiet: it does nothing that
# is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
updated=""
apt_install() {
  if [ -z "$updated" ]; then
    $sudo apt-get update -qq >/dev/null
    updated=1
  fi
  $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "deps: installing nodejs and npm"
  apt_install nodejs npm
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "deps: installing chromium (headless browser interop test)"
  # Recommends (notification daemon, upower, printing, …) are not needed headless.
  apt_install --no-install-recommends chromium
fi

dir=bench/interop/testdata
want=$(node -p "require('./$dir/package-lock.json').packages['node_modules/ws'].version")
have=$(node -p "try { require('./$dir/node_modules/ws/package.json').version } catch { '' }")
if [ "$have" != "$want" ]; then
  echo "deps: npm ci in $dir (ws $want)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
