#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests, against real
# PostgreSQL 15 and OpenBao that the tests start themselves (crates/testkit),
# then the end-to-end suites (the service binaries as processes: journeys,
# the chart, the fault suite). Prints the time of each part at the end.
#
#   scripts/test.sh [--fuzz-cases N] [--fuzz-seed S] [cargo test args...]
#
# The parsers' fuzz targets (proptest) run a seeded, bounded number of cases:
# 256 from seed 20261208 unless told otherwise. A longer run:
#   scripts/test.sh --fuzz-cases 100000 fuzz
# Failures found are kept as regression cases in each crate's
# `proptest-regressions/` (commit them).
set -euo pipefail
cd "$(dirname "$0")/.."

export PROPTEST_CASES="${PROPTEST_CASES:-256}"
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261208}"
while [ $# -gt 0 ]; do
  case "$1" in
    --fuzz-cases) PROPTEST_CASES="$2"; shift 2 ;;
    --fuzz-seed) PROPTEST_RNG_SEED="$2"; shift 2 ;;
    *) break ;;
  esac
done

timings=()
part() {
  local name="$1"; shift
  local start=$SECONDS
  "$@"
  timings+=("$(printf '%-44s %5ds' "$name" $((SECONDS - start)))")
}
report() {
  echo
  echo "test.sh: time of each part (fuzz: $PROPTEST_CASES cases, seed $PROPTEST_RNG_SEED)"
  for t in "${timings[@]}"; do echo "  $t"; done
}
trap report EXIT

part "dependencies (PostgreSQL, OpenBao, tools)" scripts/test-deps.sh
# One test process per test binary, so each binary shares one PostgreSQL and
# one OpenBao among its tests (nextest would start them once per test).
# The end-to-end suites run the service binaries as processes: build them
# first (cargo test builds only what each test target declares).
part "build of the service binaries" cargo build --workspace --bins --locked
# Supply chain: every crate's licence allowed, no banned crate, crates.io only
# (deny.toml). Advisories need GitHub, which these machines cannot reach:
# `make audit` checks them where it can.
part "cargo-deny (licences, bans, sources)" .tools/bin/cargo-deny --log-level error check licenses bans sources
part "unit, integration, replica and fuzz tests" cargo test --workspace --exclude guardline-e2e --locked "$@"
part "end to end: journeys, chart, faults" cargo test -p guardline-e2e --locked "$@"
