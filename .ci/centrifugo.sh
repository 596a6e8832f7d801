#!/usr/bin/env bash
# Prints the path of the Centrifugo v6.9.1 binary that bench/gateway and
# wsbench's gateway scenarios use as the reference server, installing it
# with `go install` (into $(go env GOPATH)/bin, never into a go.mod) only
# when it is missing or another version. Build output goes to stderr so
# that stdout is the path alone:
#   CENTRIFUGO=$(bash .ci/centrifugo.sh)
set -euo pipefail

version=v6.9.1
bin="$(go env GOPATH)/bin/centrifugo"
# `centrifugo version` says v0.0.0 when built by go install; the module
# version is in the binary's build information.
installed() {
  [ -x "$bin" ] && go version -m "$bin" 2>/dev/null |
    grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/centrifugal/centrifugo/v6[[:space:]]+$version([[:space:]]|$)"
}
if installed; then
  echo "$bin"
  exit 0
fi
echo "centrifugo: go install github.com/centrifugal/centrifugo/v6@$version" >&2
go install "github.com/centrifugal/centrifugo/v6@$version" >&2
installed || { echo "centrifugo: $bin is not $version after go install" >&2; exit 1; }
echo "$bin"
