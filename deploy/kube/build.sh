#!/usr/bin/env bash
# Builds Kubernetes VERSION's commands from the k8s.io/kubernetes Go module
# into DIR: kube-apiserver and kubectl (make kube-apiserver), or the ones
# named after DIR (make kube: the node's). "pause" is the pod sandbox's
# process, Kubernetes' own build/pause/linux/pause.c, built static with gcc.
#
# The module as served has no staging/ directory, while its go.mod replaces
# the k8s.io/* staging modules with ./staging/src/k8s.io/*: a copy of the
# module with those replaces pointed at the published v0.MINOR.PATCH
# modules builds.
set -euo pipefail
version=${1:?usage: build.sh VERSION DIR [COMMAND...]}
out=${2:?usage: build.sh VERSION DIR [COMMAND...]}
shift 2
cmds=("$@")
[ ${#cmds[@]} -gt 0 ] || cmds=(kube-apiserver kubectl)
staging=v0.${version#*.}

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mod=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$mod" ] || { echo "k8s.io/kubernetes@v$version: no module directory" >&2; exit 1; }
cp -r "$mod" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
rm -f go.work go.work.sum
sed -i -E "s#^([[:space:]]*)(k8s\.io/[A-Za-z0-9._/-]+) => \./staging/src/k8s\.io/[A-Za-z0-9._/-]+#\1\2 => \2 $staging#" go.mod

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=${version%%.*}"
minor=${version#*.}
ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
mkdir -p "$out"
for cmd in "${cmds[@]}"; do
  echo "building $cmd v$version into $out"
  if [ "$cmd" = pause ]; then
    gcc -Os -static -Wall -Werror -DVERSION="v$version" -o "$out/pause" build/pause/linux/pause.c
    continue
  fi
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$cmd" "./cmd/$cmd"
done
