#!/usr/bin/env bash
# Installs what the tests need beyond Go on a fresh Debian machine: node and
# npm, the pinned npm packages of bench/interop (Node's ws) and
# bench/gateway (the centrifuge-js SDK), Debian's chromium (for the
# headless browser tests; large, so only when /usr/bin/chromium is
# missing) and Debian's nginx (bench/gateway runs wsgate behind it; the
# tests start it themselves, the package's service is not used).
# Idempotent and quiet: it does nothing that is already done.
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

if [ ! -x /usr/sbin/nginx ]; then
  echo "deps: installing nginx (wsgate behind a proxy, TLS in front)"
  # policy-rc.d: the package must not start its system service here.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    apt_install --no-install-recommends nginx
    $sudo rm -f /usr/sbin/policy-rc.d
  else
    apt_install --no-install-recommends nginx
  fi
fi

# npm_ci DIR PKG: npm ci in DIR unless its node_modules already hold the
# version of PKG that DIR's package-lock.json pins.
npm_ci() {
  local dir=$1 pkg=$2 want have
  want=$(node -p "require('./$dir/package-lock.json').packages['node_modules/$pkg'].version")
  have=$(node -p "try { require('./$dir/node_modules/$pkg/package.json').version } catch { '' }")
  if [ "$have" != "$want" ]; then
    echo "deps: npm ci in $dir ($pkg $want)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}
npm_ci bench/interop/testdata ws
npm_ci bench/gateway/testdata centrifuge
