//! certfleet: a central ACME certificate service for a fleet of servers.
//!
//! Reading order for a newcomer, top down (each module's doc comment says what it owns); each
//! layer uses only the ones below it:
//!
//! 1. [`app`]: state, listeners, background tasks, graceful shutdown. Start here.
//! 2. [`api`]: the route table, the handlers, the responses they render.
//!    [`observe`]: request ids, the audit line, Prometheus metrics, log lines.
//! 3. [`auth`]: who is asking: the `Authenticator` seam, PSK, OIDC, Akash, the domain policy.
//! 4. [`service`]: the certificate service: the response cache, shared issuances, leases,
//!    back-off, and the renewal worker.
//! 5. [`acme`]: the ACME account and the one resumable order flow; HTTP-01 and DNS-01.
//!    [`dns`]: DNS providers for DNS-01 (Cloudflare, Google Cloud DNS, RFC 2136), zone
//!    discovery and the propagation check.
//!    [`tls`]: certfleet's own TLS certificate, SNI selection and reload.
//! 6. [`schedule`]: when a certificate is due and how long a failing one waits (pure functions).
//! 7. [`store`]: the `Store` seam, one SQL store on SQLite or PostgreSQL, keys sealed at rest.
//! 8. [`config`]: typed configuration: YAML file, `CERTFLEET_*` overrides, `*File` secrets.
//! 9. [`error`]: the API's errors, mapped to status and code once.
//! 10. [`domain`]: `DomainName`, `NameSet`, `DomainPattern`, `KeyType`: names parsed once.
//! 11. [`util`]: the clock, failpoints, durations.
//!
//! The commands (`serve`, `check-config`, `fetch`, `akash`) live beside `main.rs`, in the binary.

pub mod acme;
/// The Akash token verifier, its own crate (`crates/akash`), under its old path.
pub use certfleet_akash as akash;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod dns;
pub mod domain;
pub mod error;
pub mod observe;
pub mod schedule;
pub mod service;
pub mod store;
pub mod tls;
pub mod util;
