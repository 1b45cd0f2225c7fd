//! Akash provider-API tokens (AEP-64): JWTs a tenant's wallet signs with its secp256k1 key,
//! verified without a shared secret. certfleet's `auth.akash` method uses this crate, and so can
//! a provider gateway that verifies its tenants' tokens: it brings no database, no HTTP server
//! and no ACME client, only the crypto, the claim rules and an HTTP client for the chain.
//!
//! Reading order: [`token`] (the wire form and the signature, `ES256K` and `ES256KADR36`),
//! [`address`] (bech32 `akash1...` and how a key derives one), [`claims`] (every claim rule,
//! and time), [`keys`] (the public key from the chain, cached for good, or recovered from the
//! signature), [`permission`] (what a token permits on one lease); [`mint`] signs a token, for
//! tests and tools.
//!
//! A gateway checks each request's token, then whether it permits the action on the lease:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use certfleet_akash::{Address, KeySource, Lease, Scope, Validity, Verifier, permits};
//!
//! # async fn gateway(token: &str, now: i64) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::new(
//!     KeySource::Recover,
//!     Validity { leeway: Duration::from_secs(30), max_lifetime: Some(Duration::from_secs(900)) },
//! );
//! let me = Address::parse("akash1yg3jgffxyu5zj23t9skjutesxyerxdp46ed34h")?; // the provider
//! let tenant = Address::parse("akash1zyfpx9q4zct3sxg6rvwp68slyqsjygey0quqf3")?; // lease owner
//!
//! // Err: 401, or 503 when `rejection.is_unavailable()` (the chain cannot be asked now).
//! let verified = verifier.verify(token, now).await?;
//! let lease = Lease { owner: &tenant, dseq: 1234, gseq: 1, oseq: 1, service: "web" };
//! if permits(&verified.claims, &me, Scope::Logs, &lease) {
//!     // serve the logs
//! } else {
//!     // 403
//! }
//! # Ok(())
//! # }
//! ```
//!
//! With [`KeySource::Chain`], keys come from the chain's REST endpoint instead
//! ([`ChainKeys::new`] with [`ChainOptions::new`] and a [`KeyCache`], such as [`MemoryOnly`]).

pub mod address;
pub mod claims;
mod duration;
pub mod keys;
mod mint;
pub mod permission;
pub mod token;

use k256::ecdsa::VerifyingKey;

pub use self::address::{Address, AddressError};
pub use self::claims::{
    Claims, ClaimsError, DeploymentPermission, Leases, Permission, ProviderAccess, Scope, Scopes,
    Validity, ValidityError,
};
pub use self::keys::{
    ChainKeys, ChainKeysError, ChainOptions, KeyCache, KeyCacheError, KeySource, MemoryOnly,
};
pub use self::mint::{MintError, mint};
pub use self::permission::{Lease, permits};
pub use self::token::{Algorithm, RecoveryError, SignatureError, Token, TokenError};

/// Why a token was not accepted. The message never quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The token is invalid (HTTP 401).
    #[error("{0}")]
    Invalid(String),
    /// The token cannot be checked now: the chain cannot be asked for the key (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
}

impl Rejection {
    /// Whether the token may be fine and asking again later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A token whose signature and claims were checked.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Which algorithm signed it.
    pub algorithm: Algorithm,
    /// Its claims.
    pub claims: Claims,
    /// The issuer's public key.
    pub key: VerifyingKey,
}

/// Verifies tokens: parse, claims and time, then the signature under the issuer's key.
#[derive(Debug)]
pub struct Verifier {
    keys: KeySource,
    validity: Validity,
}

impl Verifier {
    /// A verifier taking keys from `keys` and applying `validity` to the times.
    pub fn new(keys: KeySource, validity: Validity) -> Self {
        Self { keys, validity }
    }

    /// The key source (for its counters).
    pub fn keys(&self) -> &KeySource {
        &self.keys
    }

    /// The time rules.
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// Verifies a whole token at `now` (Unix seconds).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Verified, Rejection> {
        let token = Token::parse(token).map_err(|e| Rejection::Invalid(e.to_string()))?;
        let claims = self.check_claims(&token, now)?;
        self.check_signature(&token, claims).await
    }

    /// The claim rules and the time rules, before any key is looked up (cheap, local).
    pub fn check_claims(&self, token: &Token, now: i64) -> Result<Claims, Rejection> {
        let claims = Claims::parse(token.claims())
            .map_err(|e| Rejection::Invalid(format!("the token's claims: {e}")))?;
        self.validity
            .check(&claims, now)
            .map_err(|e| Rejection::Invalid(e.to_string()))?;
        Ok(claims)
    }

    /// The signature, under the key of `claims.issuer` from the key source.
    pub async fn check_signature(
        &self,
        token: &Token,
        claims: Claims,
    ) -> Result<Verified, Rejection> {
        let key = match &self.keys {
            KeySource::Recover => token
                .recover_key()
                .map_err(|e| Rejection::Invalid(format!("the token's signature: {e}")))?,
            KeySource::Chain(chain) => {
                let key = chain.key(token.issuer()).await?;
                token.verify_with(&key).map_err(|e| {
                    Rejection::Invalid(format!(
                        "the token's signature: {e} under the key of {} (iss)",
                        token.issuer()
                    ))
                })?;
                key
            }
        };
        Ok(Verified {
            algorithm: token.algorithm(),
            claims,
            key,
        })
    }
}
