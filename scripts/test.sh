#!/usr/bin/env bash
# The whole test suite: installs the real components the tests need, checks formatting and
# lints, then runs every test (unit, router, and end-to-end against Pebble).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# The workspace: certfleet and crates/akash (the Akash verifier's own unit tests run here too).
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# Packaging (each script installs its own tools: buildah, debootstrap, hadolint, helm-python-sdk,
# kubernetes-validate): the runtime image built from the binary `cargo test` just built, then
# the Helm chart linted, rendered, validated against Kubernetes 1.31 and its configs checked.
scripts/check-image.sh target/debug/certfleet
scripts/check-chart.sh
