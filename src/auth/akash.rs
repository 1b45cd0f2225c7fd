//! Akash provider-API tokens (`auth.akash`): `Authorization: Bearer <jwt>` whose `alg` is
//! `ES256K` or `ES256KADR36`, signed by a provider's wallet (AEP-64), verified by
//! [`crate::akash`] with no shared secret.
//!
//! Checks, in order: the token's form and claims (time, `maxTokenLifetime`); the issuer is one
//! of `auth.akash.principals` (else 403, before any key is looked up: certfleet never asks the
//! chain about wallets it does not serve); with `auth.akash.audience`, a `granular` token
//! naming that address as a provider (else 401); then the signature, under the key from the
//! chain (cached for good in the store) or recovered from the signature. The principal may
//! request its configured names.
//!
//! Verified tokens are cached by their SHA-256 until their `exp`, at most
//! [`CACHE_CAPACITY`]: a gateway presenting the same token again costs a hash and a map
//! lookup, not a signature check.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use aws_lc_rs::digest;

use super::{Authenticator, Check, Outcome, Principal};
use crate::akash::{
    Address, Algorithm, ChainKeys, ChainKeysError, ChainOptions, KeyCache, KeyCacheError,
    KeySource, Rejection, Token, Validity, Verified, Verifier,
};
use crate::config::{AkashConfig, AkashKeySource};
use crate::store::Store;
use crate::util::clock;

/// Verified tokens kept at most.
pub const CACHE_CAPACITY: usize = 10_000;

/// The Akash token method.
#[derive(Debug)]
pub struct AkashAuth {
    verifier: Verifier,
    principals: HashMap<Address, Principal>,
    audience: Option<Address>,
    cache: TokenCache,
}

/// Why `auth.akash` cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AkashAuthError {
    /// `keySource: chain` without the endpoint to ask (config validation refuses this too).
    #[error("auth.akash.restUrl is required with keySource: chain")]
    NoRestUrl,
    /// The HTTP client for the chain cannot be built (`caCertificates`, the TLS backend).
    #[error("auth.akash: {0}")]
    Chain(#[source] ChainKeysError),
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Invalid (401).
    Invalid(String),
    /// Valid or not, from a wallet that is not a principal (403).
    Forbidden(String),
    /// The key cannot be looked up now (503).
    Unavailable(String),
}

impl Refusal {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::Invalid(m) | Self::Forbidden(m) | Self::Unavailable(m) => m,
        }
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid(m) => Self::Invalid(m),
            Rejection::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

impl AkashAuth {
    /// Builds the method from `auth.akash`, keeping keys found on chain in `cache`.
    pub fn new(config: &AkashConfig, cache: Arc<dyn KeyCache>) -> Result<Self, AkashAuthError> {
        let keys = match config.key_source {
            AkashKeySource::Recover => KeySource::Recover,
            AkashKeySource::Chain => {
                let rest_url = config
                    .rest_url
                    .as_deref()
                    .ok_or(AkashAuthError::NoRestUrl)?;
                let mut options = ChainOptions::new(rest_url);
                options.ca_certificates.clone_from(&config.ca_certificates);
                KeySource::Chain(ChainKeys::new(options, cache).map_err(AkashAuthError::Chain)?)
            }
        };
        let validity = Validity {
            leeway: config.leeway,
            max_lifetime: config.max_token_lifetime,
        };
        let principals = config
            .principals
            .iter()
            .map(|p| {
                let principal = Principal {
                    name: p.address.to_string().into(),
                    method: "akash",
                    domains: Arc::from(p.domains.clone()),
                    // A provider's wallet key proves who runs the provider, not who runs
                    // certfleet: Akash tokens never administer.
                    admin: false,
                    profiles: p.profiles.as_deref().map(Arc::from),
                    quota: p.quota,
                };
                (p.address.clone(), principal)
            })
            .collect();
        Ok(Self {
            verifier: Verifier::new(keys, validity),
            principals,
            audience: config.audience.clone(),
            cache: TokenCache::default(),
        })
    }

    /// The verifier (its key source, for counters).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Every check at `now`: the verified token and the principal it speaks for.
    pub async fn verify(&self, token: &str, now: i64) -> Result<(Verified, Principal), Refusal> {
        let token = Token::parse(token).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let claims = self.verifier.check_claims(&token, now)?;
        let principal = self
            .principals
            .get(&claims.issuer)
            .cloned()
            .ok_or_else(|| {
                Refusal::Forbidden(format!(
                    "{} is not one of auth.akash.principals: this wallet may not request \
                     certificates",
                    claims.issuer
                ))
            })?;
        if let Some(audience) = &self.audience
            && !claims.names_provider(audience)
        {
            return Err(Refusal::Invalid(format!(
                "the token is not meant for certfleet: auth.akash.audience asks for a granular \
                 token whose leases.permissions names {audience} as provider"
            )));
        }
        let verified = self.verifier.check_signature(&token, claims).await?;
        Ok((verified, principal))
    }
}

impl Authenticator for AkashAuth {
    fn method(&self) -> &'static str {
        "akash"
    }

    fn authenticate<'a>(&'a self, scheme: &'a str, credentials: &'a str) -> Check<'a> {
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Check::Now(Outcome::NotMine);
        }
        let is_akash = crate::akash::token::header_algorithm(credentials)
            .is_some_and(|alg| Algorithm::from_name(&alg).is_some());
        if !is_akash {
            return Check::Now(Outcome::NotMine);
        }
        let now = clock::now();
        let digest = sha256(credentials);
        if let Some(principal) = self.cache.get(&digest, now) {
            return Check::Now(Outcome::Authenticated(principal));
        }
        // Verifying may wait for the chain (the provider's public key).
        Check::Later(Box::pin(async move {
            match self.verify(credentials, now).await {
                Ok((verified, principal)) => {
                    self.cache
                        .insert(digest, &principal, verified.claims.expires_at, now);
                    Outcome::Authenticated(principal)
                }
                Err(refusal) => {
                    tracing::debug!(reason = refusal.message(), "Akash token refused");
                    match refusal {
                        Refusal::Invalid(m) => Outcome::Invalid(m),
                        Refusal::Forbidden(m) => Outcome::InsufficientScope(m),
                        Refusal::Unavailable(m) => Outcome::Unavailable(m),
                    }
                }
            }
        }))
    }
}

/// The store as the home of public keys found on chain, so they survive restarts.
#[derive(Debug)]
pub struct StoreKeyCache(pub Arc<dyn Store>);

#[async_trait]
impl KeyCache for StoreKeyCache {
    async fn load(&self, address: &Address) -> Result<Option<Vec<u8>>, KeyCacheError> {
        self.0
            .akash_pubkey(address.as_str())
            .await
            .map_err(KeyCacheError::new)
    }

    async fn save(&self, address: &Address, key: &[u8; 33]) -> Result<(), KeyCacheError> {
        self.0
            .save_akash_pubkey(address.as_str(), key)
            .await
            .map_err(KeyCacheError::new)
    }
}

/// Verified tokens by SHA-256, each until its `exp`.
#[derive(Debug, Default)]
struct TokenCache {
    entries: RwLock<HashMap<[u8; 32], (Principal, i64)>>,
}

impl TokenCache {
    fn get(&self, digest: &[u8; 32], now: i64) -> Option<Principal> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(digest)
            .filter(|(_, exp)| now < *exp)
            .map(|(principal, _)| principal.clone())
    }

    /// Keeps a verified token until its `exp`, making room by dropping expired entries, then
    /// any one.
    fn insert(&self, digest: [u8; 32], principal: &Principal, exp: i64, now: i64) {
        if exp <= now {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_CAPACITY && !entries.contains_key(&digest) {
            entries.retain(|_, (_, exp)| now < *exp);
            if entries.len() >= CACHE_CAPACITY {
                let victim = entries.keys().next().copied();
                if let Some(victim) = victim {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(digest, (principal.clone(), exp));
    }
}

fn sha256(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, text.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainPattern;

    fn principal(name: &str) -> Principal {
        Principal {
            name: name.into(),
            method: "akash",
            domains: Arc::from(vec![DomainPattern::any()]),
            admin: false,
            profiles: None,
            quota: None,
        }
    }

    #[test]
    fn the_cache_keeps_tokens_until_exp_and_stays_bounded() {
        let cache = TokenCache::default();
        cache.insert([1; 32], &principal("a"), 100, 50);
        assert_eq!(
            cache.get(&[1; 32], 99).map(|p| p.name.to_string()),
            Some("a".to_owned())
        );
        assert!(cache.get(&[1; 32], 100).is_none());
        cache.insert([2; 32], &principal("b"), 50, 50);
        assert!(
            cache.get(&[2; 32], 10).is_none(),
            "an expired token is not kept"
        );
        for i in 0..=CACHE_CAPACITY {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.insert(key, &principal("x"), 1000, 50);
        }
        let len = cache.entries.read().map(|e| e.len()).unwrap_or_default();
        assert!(len <= CACHE_CAPACITY, "{len}");
    }
}
