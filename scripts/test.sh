#!/usr/bin/env bash
# The whole test suite: installs the real components the tests need, checks formatting and
# lints, then runs every test (unit, router, and end-to-end against Pebble).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
