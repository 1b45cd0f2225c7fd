//! certfleet: a central ACME certificate service for a fleet of servers.
//!
//! Reading order for a newcomer, top down (each module's doc comment says what it owns). Each
//! layer uses only the layers below it; `tests/it/layers.rs` checks that no two modules import
//! each other, however indirectly, and that `config` uses nothing of certfleet's but `domain`
//! and `util`.
//!
//! 1. [`app`]: builds everything from the config; listeners, background tasks, shutdown.
//! 2. [`api`]: the route table, the handlers, the responses they render (`api/body.rs`).
//!    [`tls`]: certfleet's own TLS certificate, SNI selection and reload.
//! 3. [`auth`]: who is asking: the `Authenticator` seam, PSK, OIDC, Akash, the domain policy.
//! 4. [`error`]: every client-visible failure, mapped to status and code once.
//! 5. [`service`]: the certificate service (cache, shared issuances, leases, back-off, forced
//!    renewal) and the renewal worker.
//! 6. [`acme`]: the ACME account and the one resumable order flow; HTTP-01 and DNS-01.
//!    [`dns`]: DNS providers for DNS-01, zone discovery, the propagation check.
//!    [`notify`]: events, the outbox's delivery worker, webhooks and email.
//! 7. [`observe`]: request ids, the audit line, Prometheus metrics, log lines.
//! 8. [`schedule`]: when a certificate is due and how long a failing one waits (pure).
//!    [`store`]: the `Store` seam, one SQL store on SQLite or PostgreSQL, keys sealed at rest.
//! 9. [`config`]: typed configuration: YAML file, `CERTFLEET_*` overrides, `*File` secrets.
//! 10. [`domain`]: names, patterns, key types, failure kinds: parsed once.
//!     [`util`]: the clock, failpoints, durations, PEM.
//!
//! [`akash`] is the `certfleet-akash` crate (`crates/akash`): Akash provider-API tokens, a
//! library gateways use without certfleet. The commands (`serve`, `check-config`, `fetch`,
//! `akash`) live beside `main.rs`, in the binary.

pub mod acme;
/// The Akash token verifier: its own crate (`crates/akash`).
pub use certfleet_akash as akash;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod dns;
pub mod domain;
pub mod error;
pub mod notify;
pub mod observe;
pub mod schedule;
pub mod service;
pub mod store;
pub mod tls;
pub mod util;
