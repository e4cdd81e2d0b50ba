#!/usr/bin/env bash
# Builds the local trace backend, Jaeger v2 (its `cmd/jaeger`), from its Go module at a
# pinned version into .devstack/tools/bin/jaeger. `go install` refuses the module (its
# go.mod has replace directives), so it is built inside the module from the module cache.
# About 10 minutes cold on 2 cores; instant once built (stamp). Optional: without it the
# devstack runs its OTLP sink (devstack/otlp_sink.py) instead.
#
#   bash devstack/jaeger.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${COMPTOIR_TOOLS_DIR:-$ROOT/.devstack/tools}"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
PY="${COMPTOIR_PYTHON:-$ROOT/.venv/bin/python}"
# The jaeger module's v1.x tags carry the v2 binary in cmd/jaeger (v1.75.0 <-> Jaeger v2).
JAEGER_VERSION=v1.75.0

mkdir -p "$BIN" "$STAMPS"
if [[ -x "$BIN/jaeger" && -f "$STAMPS/jaeger" && "$(cat "$STAMPS/jaeger")" == "$JAEGER_VERSION" ]]; then
  exit 0
fi
command -v go >/dev/null || {
  echo "jaeger: 'go' is needed to build Jaeger; the devstack uses its OTLP sink meanwhile" >&2
  exit 1
}
echo "== jaeger $JAEGER_VERSION (built from its Go module)"
started=$SECONDS
dir="$(env GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
(cd "$dir" && env GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$BIN/jaeger" ./cmd/jaeger)
echo "$JAEGER_VERSION" >"$STAMPS/jaeger"
echo "   built in $((SECONDS - started)) s"
