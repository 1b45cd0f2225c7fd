//! The challenge solver seam (RFC 8555 section 8): present a response, then clean it up.
//!
//! A solver makes one challenge's response visible to the CA and returns a [`Presented`]
//! handle; `cleanup` removes exactly what that handle names (already gone is success). Handles
//! are plain data so that they can be persisted and cleaned up after a restart.

use std::fmt;

use async_trait::async_trait;
use instant_acme::ChallengeType;

/// One challenge response made visible to the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The name being validated, for messages.
    pub name: String,
    /// Solver-specific handle (the HTTP-01 token, a DNS record id, ...).
    pub handle: String,
}

/// Makes challenge responses visible and removes them.
#[async_trait]
pub trait Solver: Send + Sync + fmt::Debug {
    /// The challenge type this solver answers.
    fn challenge_type(&self) -> ChallengeType;

    /// Makes `key_authorization` visible for `token` of the challenge on `name`.
    async fn present(
        &self,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<Presented, String>;

    /// Removes what `present` made visible. Already gone is success.
    async fn cleanup(&self, presented: &Presented) -> Result<(), String>;
}
