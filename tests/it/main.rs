//! certfleet's integration tests, one crate: the harness is compiled once and every test runs
//! in one binary (`cargo test --test it`; a module's tests with `cargo test --test it api::`).
//!
//! The tests run against the real components (../shared/TESTING.md): Pebble, BIND, PostgreSQL,
//! an OIDC provider and the Akash SDK under node, certfleet in-process and as the real binary.
//! A missing component makes its tests fail with an install hint, never skip them:
//! `scripts/install-test-deps.sh` installs them all.

// The harness.
mod common;
mod dns;

// The tests, one module per subject.
mod addresses;
mod admin;
mod akash;
mod akash_chain;
mod akash_wycheproof;
mod api;
mod ari;
mod config;
mod crash;
mod csr;
mod dashboard;
mod dns01;
mod dns_conformance;
mod dns_persist;
mod docs;
mod fallback;
mod fetch;
mod fetch_formats;
mod inventory;
mod issuance;
mod layers;
mod lifecycle;
mod limits;
mod notify;
mod notify_cli;
mod notify_harness;
mod observability;
mod oidc;
mod openapi;
mod pebble_harness;
mod profiles;
mod recipes;
mod replicas;
mod servers;
mod store_story;
mod tls;
mod watch;
