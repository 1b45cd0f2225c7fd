//! certfleet: a central ACME certificate service for a fleet of servers.
//!
//! Reading order for a newcomer, top down (each module's doc comment says what it owns):

pub mod acme; // the ACME account and the one order flow; HTTP-01
pub mod api; // the route table and the handlers
pub mod app; // state, listeners, graceful shutdown: start here
pub mod auth; // who is asking: the Authenticator seam, PSK, the domain policy
pub mod certs; // stored certificates, the response cache, shared issuances
pub mod clock;
pub mod config; // typed configuration: YAML file, CERTFLEET_* overrides, *File secrets
pub mod domain; // DomainName / NameSet / DomainPattern / KeyType: names parsed once
pub mod error; // the API's errors, mapped to status and code once
pub mod renewal; // when a certificate is due
pub mod store; // the Store seam and its SQLite backend // Unix time, read in one place
