#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests, against real
# PostgreSQL 15 and OpenBao that the tests start themselves (crates/testkit).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
# One test process per test binary, so each binary shares one PostgreSQL and
# one OpenBao among its tests (nextest would start them once per test).
# The end-to-end journeys (e2e/) run the service binaries as processes:
# build them first (cargo test builds only what each test target declares).
cargo build --workspace --bins --locked
# Supply chain: every crate's licence allowed, no banned crate, crates.io only
# (deny.toml). Advisories need GitHub, which these machines cannot reach:
# `make audit` checks them where it can.
.tools/bin/cargo-deny --log-level error check licenses bans sources
exec cargo test --workspace --locked "$@"
