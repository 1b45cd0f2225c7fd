//! certfleet: a central ACME certificate service for a fleet of servers.
//!
//! Reading order for a newcomer, top down (each module's doc comment says what it owns):
//!
//! 1. [`app`]: state, listeners, background tasks, graceful shutdown. Start here.
//! 2. [`api`]: the route table and the handlers.
//! 3. [`auth`]: who is asking: the `Authenticator` seam, PSK, the domain policy.
//!    [`akash`]: Akash provider-API tokens (AEP-64), a library `auth.akash` and provider
//!    gateways share: signatures, claims, keys from the chain, lease permissions.
//! 4. [`certs`]: stored certificates, the response cache, shared issuances, back-off.
//! 5. [`acme`]: the ACME account and the one resumable order flow; HTTP-01 and DNS-01.
//!    [`dns`]: DNS providers for DNS-01 (Cloudflare, Google Cloud DNS, RFC 2136), zone
//!    discovery and the propagation check.
//! 6. [`renewal`]: when a certificate is due, failure back-off, the renewal worker.
//! 7. [`store`]: the `Store` seam, its SQLite and PostgreSQL backends, private keys sealed at rest.
//! 8. [`config`]: typed configuration: YAML file, `CERTFLEET_*` overrides, `*File` secrets.
//! 9. [`domain`]: `DomainName`, `NameSet`, `DomainPattern`, `KeyType`: names parsed once.
//! 10. [`error`]: the API's errors, mapped to status and code once.
//! 11. [`clock`] (time read in one place) and [`failpoint`] (crash-test hooks).
//! 12. [`fetch`]: `certfleet fetch`, the fleet client (uses only the API, like any client).
//! 13. [`observe`] (request ids, the audit line), [`metrics`] (Prometheus series and
//!     `/metrics`) and [`logging`] (text or JSON log lines): what operators see.

pub mod acme;
pub mod akash;
pub mod api;
pub mod app;
pub mod auth;
pub mod certs;
pub mod clock;
pub mod config;
pub mod dns;
pub mod domain;
pub mod error;
pub mod failpoint;
pub mod fetch;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod renewal;
pub mod store;
pub mod tls;
