#!/usr/bin/env bash
# Builds Dapr's control-plane commands (operator, injector, ...) of dapr
# VERSION into DIR (make kube), as Dapr's own release does: inside a copy of
# the github.com/dapr/dapr module, with its go.mod, go.sum and replaces,
# static (CGO_ENABLED=0). The sidecar itself is bin/daprd (make daprd).
set -euo pipefail
version=${1:?usage: build-dapr.sh VERSION DIR COMMAND...}
out=${2:?usage: build-dapr.sh VERSION DIR COMMAND...}
shift 2

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mod=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/dapr/dapr@v$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$mod" ] || { echo "github.com/dapr/dapr@v$version: no module directory" >&2; exit 1; }
cp -r "$mod" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
mkdir -p "$out"
for cmd in "$@"; do
  echo "building dapr $cmd $version into $out"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$version" -o "$out/$cmd" "./cmd/$cmd"
done
