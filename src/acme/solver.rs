//! The challenge solver seam (RFC 8555 section 8): prepare, present, wait until visible, then
//! clean up.
//!
//! A solver first says what it will present ([`Solver::prepare`], no side effect), which the
//! order flow records; then it makes the response visible and returns the final [`Presented`]
//! handle (for DNS-01, the provider's record id is known only now); `cleanup` removes exactly
//! what a handle names (already gone is success), whether it came from `prepare` or `present`.
//! Handles are plain data so that they can be persisted and cleaned up after a restart.

use std::fmt;

use async_trait::async_trait;
use instant_acme::ChallengeType;

use super::IssueError;

/// One challenge response, prepared or made visible to the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The name being validated, for messages.
    pub name: String,
    /// Solver-specific handle (the HTTP-01 token, a DNS record as JSON, ...).
    pub handle: String,
}

/// Which challenge a request asks for (`"challenge"` in the body); not part of a certificate's
/// identity. Wildcard names always use a DNS challenge, IP addresses never (see
/// `Issuer::solver_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChallengeChoice {
    /// DNS-PERSIST-01 when a `challenges.dnsPersist` entry matches the name, else the
    /// `challenge` of the `challenges.dns01` entry that matches it, else HTTP-01, else
    /// TLS-ALPN-01 (whichever the server answers).
    #[default]
    Auto,
    /// `"http-01"`.
    Http01,
    /// `"tls-alpn-01"`.
    TlsAlpn01,
    /// `"dns-01"`: refused for a name no `challenges.dns01` entry matches.
    Dns01,
    /// `"dns-account-01"`: through the `challenges.dns01` entries, under the account label.
    DnsAccount01,
    /// `"dns-persist-01"`: refused for a name no `challenges.dnsPersist` entry matches.
    DnsPersist01,
}

/// Why a cleanup failed: the solver's own error. Cleanup failures are logged and retried at the
/// next start, never answered to a client.
pub type CleanupError = Box<dyn std::error::Error + Send + Sync>;

/// Makes challenge responses visible and removes them.
#[async_trait]
pub trait Solver: Send + Sync + fmt::Debug {
    /// The challenge type this solver answers.
    fn challenge_type(&self) -> ChallengeType;

    /// What `present` will make visible for the challenge on `name`, as a handle that `cleanup`
    /// understands; recorded before anything is made visible. No side effect.
    async fn prepare(
        &self,
        name: &str,
        token: &str,
        _key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        Ok(Presented {
            name: name.to_owned(),
            handle: token.to_owned(),
        })
    }

    /// Makes `key_authorization` visible as `prepared` said; returns the final handle.
    async fn present(
        &self,
        prepared: &Presented,
        token: &str,
        key_authorization: &str,
    ) -> Result<Presented, IssueError>;

    /// Waits until everything in `presented` can be seen by the CA (DNS propagation).
    async fn wait_visible(&self, _presented: &[Presented]) -> Result<(), IssueError> {
        Ok(())
    }

    /// Removes what `present` made visible. Already gone is success.
    async fn cleanup(&self, presented: &Presented) -> Result<(), CleanupError>;
}
