//! OIDC / OAuth 2.0 bearer tokens: `Authorization: Bearer <jwt>`, verified against the
//! identity provider's published keys (`jwks.rs`) as RFC 9068 and RFC 8725 ask.
//!
//! A bearer token is this method's unless its `alg` is ES256K or ES256KADR36 (Akash tokens,
//! another method's). Checks, in order: size; `typ` absent, `JWT` or `at+jwt`; no `crit`; an
//! allowed asymmetric `alg`; the signature, with a key whose type and `alg` fit; `iss` equal
//! to the discovered issuer; `aud` holding a configured audience; `exp` and `nbf` with the
//! leeway; a subject; then the required scopes (403, not 401) and the names the token may
//! request.
//!
//! Verified tokens are cached by their SHA-256, at most [`CACHE_CAPACITY`] of them, each only
//! until its `exp` and only while the provider's keys are unchanged: a client presenting the
//! same token again costs a hash and a map lookup, not a signature check.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{KeySet, KeySource, KeySourceError, Lookup};
use super::{Authenticator, Check, Outcome, Principal};
use crate::config::JwtConfig;
use crate::domain::DomainPattern;
use crate::util::clock;

/// Verified tokens kept at most.
pub const CACHE_CAPACITY: usize = 10_000;
/// A JOSE header is a few dozen bytes; one beyond this is not worth decoding.
const MAX_HEADER_CHARS: usize = 2048;
/// The `alg` values of Akash provider-API tokens, answered by the Akash method.
const AKASH_ALGORITHMS: [&str; 2] = ["ES256K", "ES256KADR36"];

/// The OIDC / OAuth 2.0 bearer-token method.
#[derive(Debug)]
pub struct JwtAuth {
    rules: Rules,
    algorithms: Vec<Algorithm>,
    max_token_bytes: usize,
    keys: Arc<KeySource>,
    cache: TokenCache,
}

/// What a verified token's claims must satisfy, apart from the issuer (which comes with the
/// keys, from discovery).
#[derive(Debug)]
struct Rules {
    audiences: Vec<String>,
    required_scopes: Vec<String>,
    admin_scope: Option<String>,
    domains_claim: Option<String>,
    roles_claim: Option<String>,
    leeway: i64,
    /// `[*]`, shared by every principal when `domainsClaim` is not set.
    every_domain: Arc<[DomainPattern]>,
    /// `auth.jwt.profiles`, shared by every principal.
    profiles: Option<Arc<[crate::domain::Profile]>>,
    /// `auth.jwt.quota`, per token subject.
    quota: Option<crate::config::Limit>,
}

/// Why a token was not accepted.
#[derive(Debug, PartialEq, Eq)]
enum Reject {
    /// 401.
    Invalid(String),
    /// 403 `insufficient_scope`.
    Scope(String),
    /// 503 `auth_unavailable`.
    Unavailable(String),
}

impl JwtAuth {
    /// Builds the method from `auth.jwt`; call [`JwtAuth::start`] to begin loading keys.
    /// Fails only when the HTTP client for the provider cannot be set up.
    pub fn new(config: &JwtConfig) -> Result<Self, KeySourceError> {
        let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        Ok(Self {
            rules: Rules {
                audiences: config.audiences.clone(),
                required_scopes: config.required_scopes.clone(),
                admin_scope: config.admin_scope.clone(),
                domains_claim: config.domains_claim.clone(),
                roles_claim: config.roles_claim.clone(),
                leeway,
                every_domain: Arc::from(vec![DomainPattern::any()]),
                profiles: config.profiles.as_deref().map(Arc::from),
                quota: config.quota,
            },
            algorithms: config.algorithms.clone(),
            max_token_bytes: config.max_token_bytes,
            keys: Arc::new(KeySource::new(config)?),
            cache: TokenCache::default(),
        })
    }

    /// Starts loading the provider's keys in the background (needs a tokio runtime).
    pub fn start(&self) {
        self.keys.spawn_loader();
    }

    async fn verify(
        &self,
        token: &str,
        digest: [u8; 32],
        header: &Header,
        now: i64,
    ) -> Result<Principal, Reject> {
        let alg = self.algorithm(&header.alg)?;
        check_typ(header.typ.as_deref())?;
        if header.crit.is_some() {
            // RFC 7515 section 4.1.11: extensions we do not understand must be refused.
            return Err(invalid("the token's header has critical extensions (crit)"));
        }
        let (signing_input, signature) = token
            .rsplit_once('.')
            .ok_or_else(|| invalid("the bearer token is not a JWT"))?;
        let payload = signing_input
            .split_once('.')
            .map(|(_, payload)| payload)
            .ok_or_else(|| invalid("the bearer token is not a JWT"))?;

        let mut generation = self.keys.generation();
        let Some(mut keys) = self.keys.current() else {
            return Err(Reject::Unavailable(
                "the identity provider's signing keys are not loaded yet; retry shortly".to_owned(),
            ));
        };
        let mut lookup = keys.lookup(header.kid.as_deref(), alg);
        if matches!(lookup, Lookup::UnknownKid)
            && self.keys.refresh_for_unknown_kid(generation).await
        {
            generation = self.keys.generation();
            keys = self.keys.current().unwrap_or(keys);
            lookup = keys.lookup(header.kid.as_deref(), alg);
        }
        let candidates = match lookup {
            Lookup::Keys(candidates) => candidates,
            Lookup::UnknownKid => {
                return Err(invalid(
                    "the token's key id (kid) is not among the identity provider's keys",
                ));
            }
            Lookup::NoFittingKey => {
                return Err(invalid(
                    "no key of the identity provider fits the token's algorithm",
                ));
            }
        };
        let verified = candidates.into_iter().any(|key| {
            jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), key, alg)
                .unwrap_or(false)
        });
        if !verified {
            return Err(invalid("the token's signature does not verify"));
        }
        let claims = decode_json(payload)
            .ok_or_else(|| invalid("the token's payload is not a JSON object"))?;
        let (principal, exp) = self.rules.check(&claims, &keys, now)?;
        self.cache.insert(digest, &principal, exp, generation, now);
        Ok(principal)
    }

    fn algorithm(&self, name: &str) -> Result<Algorithm, Reject> {
        match name {
            "none" | "None" | "NONE" => {
                return Err(invalid("unsigned tokens (alg none) are never accepted"));
            }
            "HS256" | "HS384" | "HS512" => {
                return Err(invalid("HMAC-signed tokens (HS*) are never accepted"));
            }
            _ => {}
        }
        Algorithm::from_str(name)
            .ok()
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or_else(|| invalid("the token's algorithm is not accepted (auth.jwt.algorithms)"))
    }
}

impl Authenticator for JwtAuth {
    fn method(&self) -> &'static str {
        "jwt"
    }

    fn authenticate<'a>(&'a self, scheme: &'a str, credentials: &'a str) -> Check<'a> {
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Check::Now(Outcome::NotMine);
        }
        let now = clock::now();
        let digest = sha256(credentials);
        if let Some(principal) = self.cache.get(&digest, now, self.keys.generation()) {
            return Check::Now(Outcome::Authenticated(principal));
        }
        let header = match parse_header(credentials) {
            Ok(header) => header,
            Err(reason) => return Check::Now(Outcome::Invalid(reason.to_string())),
        };
        if AKASH_ALGORITHMS.contains(&header.alg.as_str()) {
            return Check::Now(Outcome::NotMine);
        }
        if credentials.len() > self.max_token_bytes {
            return Check::Now(Outcome::Invalid(format!(
                "the bearer token is longer than {} bytes (auth.jwt.maxTokenBytes)",
                self.max_token_bytes
            )));
        }
        // Verifying may wait for the provider's keys.
        Check::Later(Box::pin(async move {
            match self.verify(credentials, digest, &header, now).await {
                Ok(principal) => Outcome::Authenticated(principal),
                Err(Reject::Invalid(reason)) => {
                    tracing::debug!(reason, "bearer token refused");
                    Outcome::Invalid(reason)
                }
                Err(Reject::Scope(reason)) => Outcome::InsufficientScope(reason),
                Err(Reject::Unavailable(reason)) => Outcome::Unavailable(reason),
            }
        }))
    }
}

fn invalid(reason: &str) -> Reject {
    Reject::Invalid(reason.to_owned())
}

/// The JOSE header fields this method reads (RFC 7515 section 4.1).
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

/// Why a bearer token's JOSE header cannot be read. The `Display` goes to the client (401);
/// the sources describe only the header (a position, a symbol, a JSON type), never the payload
/// or signature, which are not decoded by then.
#[derive(Debug, thiserror::Error)]
enum HeaderError {
    /// Five segments: a JWE (RFC 7516 section 7.1), which this method does not decrypt.
    #[error("encrypted tokens (JWE) are not accepted; send a signed JWT")]
    Encrypted,
    /// Not the three segments of a compact JWS.
    #[error("the bearer token is not a JWT (header.payload.signature)")]
    Segments,
    /// The header is longer than [`MAX_HEADER_CHARS`].
    #[error("the token's header is too large")]
    TooLarge,
    /// The header segment is not base64url. To the client this is the same as [`Self::Segments`]:
    /// either way what it sent is not a JWT.
    #[error("the bearer token is not a JWT (header.payload.signature)")]
    NotBase64(#[source] base64::DecodeError),
    /// The decoded header is not a JSON object with a string `alg`.
    #[error("the token's header is not a JOSE header with an alg")]
    NotJose(#[source] serde_json::Error),
}

/// Decodes the header of a compact JWS, the one part read before knowing whose token it is.
fn parse_header(token: &str) -> Result<Header, HeaderError> {
    let segments = token.split('.').count();
    if segments == 5 {
        return Err(HeaderError::Encrypted);
    }
    if segments != 3 {
        return Err(HeaderError::Segments);
    }
    let encoded = token.split('.').next().unwrap_or_default();
    if encoded.len() > MAX_HEADER_CHARS {
        return Err(HeaderError::TooLarge);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(HeaderError::NotBase64)?;
    serde_json::from_slice(&bytes).map_err(HeaderError::NotJose)
}

/// `typ` absent (Kubernetes service-account tokens), `JWT`, or `at+jwt` (RFC 9068 section
/// 2.1), the `application/` prefix optional and case ignored (RFC 7515 section 4.1.9). Other
/// types (ID tokens' cousins such as `logout+jwt`, DPoP proofs) are not access tokens.
fn check_typ(typ: Option<&str>) -> Result<(), Reject> {
    let Some(typ) = typ else {
        return Ok(());
    };
    let lower = typ.to_ascii_lowercase();
    let bare = lower.strip_prefix("application/").unwrap_or(&lower);
    match bare {
        "jwt" | "at+jwt" => Ok(()),
        _ => Err(invalid(
            "the token's typ is not JWT or at+jwt: it is not an access token",
        )),
    }
}

/// A base64url JSON object, or `None`.
fn decode_json(encoded: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Rules {
    /// The claims checks of RFC 9068 section 4 and RFC 7519 section 4.1, then the scopes and
    /// names. Returns the principal and the token's `exp`.
    fn check(
        &self,
        claims: &Map<String, Value>,
        keys: &KeySet,
        now: i64,
    ) -> Result<(Principal, i64), Reject> {
        if claims.get("iss").and_then(Value::as_str) != Some(keys.issuer.as_str()) {
            return Err(Reject::Invalid(format!(
                "the token was not issued by {}",
                keys.issuer
            )));
        }
        let audiences = string_or_list(claims.get("aud"))
            .ok_or_else(|| invalid("the token's aud is not a string or a list of strings"))?;
        if !audiences.iter().any(|aud| self.audiences.contains(aud)) {
            return Err(invalid(
                "the token is not meant for certfleet: its aud holds none of auth.jwt.audience",
            ));
        }
        let exp = numeric_date(claims.get("exp"))
            .ok_or_else(|| invalid("the token has no valid exp (expiry)"))?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(invalid("the token has expired"));
        }
        match claims.get("nbf") {
            None => {}
            Some(nbf) => {
                let nbf = numeric_date(Some(nbf))
                    .ok_or_else(|| invalid("the token's nbf is not a date"))?;
                if now.saturating_add(self.leeway) < nbf {
                    return Err(invalid("the token is not valid yet (nbf)"));
                }
            }
        }
        let name = ["sub", "client_id"]
            .iter()
            .find_map(|claim| claims.get(*claim).and_then(Value::as_str))
            .filter(|name| !name.is_empty())
            .ok_or_else(|| invalid("the token names no subject (sub or client_id)"))?;
        let granted = granted_scopes(claims, self.roles_claim.as_deref());
        let missing: Vec<&str> = self
            .required_scopes
            .iter()
            .filter(|scope| !granted.contains(scope.as_str()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Reject::Scope(format!(
                "the token lacks the scope {} (auth.jwt.requiredScopes)",
                missing.join(" ")
            )));
        }
        let domains = match &self.domains_claim {
            None => self.every_domain.clone(),
            Some(claim) => Arc::from(domain_patterns(claims.get(claim.as_str()), claim)?),
        };
        let principal = Principal {
            name: name
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .into(),
            method: "jwt",
            domains,
            admin: self
                .admin_scope
                .as_deref()
                .is_some_and(|scope| granted.contains(scope)),
            profiles: self.profiles.clone(),
            quota: self.quota,
        };
        Ok((principal, exp))
    }
}

/// A string, or a list of strings (`aud`, `scp`); `None` for anything else.
fn string_or_list(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(one) => Some(vec![one.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// RFC 7519 section 2 NumericDate: seconds, possibly with a fraction.
fn numeric_date(value: Option<&Value>) -> Option<i64> {
    let number = value?.as_number()?;
    if let Some(secs) = number.as_i64() {
        return Some(secs);
    }
    let secs = number.as_f64().filter(|f| f.is_finite())?.floor();
    // In range, so the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    (secs.abs() < 1e15).then_some(secs as i64)
}

/// The scopes a token grants: `scope` (RFC 9068 / RFC 8693, space-separated), `scp` (Entra ID:
/// space-separated string; Okta: a list), and the configured roles claim (Entra ID app roles).
/// A value of another shape grants nothing.
fn granted_scopes<'a>(
    claims: &'a Map<String, Value>,
    roles_claim: Option<&str>,
) -> HashSet<&'a str> {
    let mut granted = HashSet::new();
    for claim in ["scope", "scp"].into_iter().chain(roles_claim) {
        match claims.get(claim) {
            Some(Value::String(text)) => granted.extend(text.split_whitespace()),
            Some(Value::Array(items)) => {
                granted.extend(items.iter().filter_map(Value::as_str));
            }
            _ => {}
        }
    }
    granted
}

/// The names a token may request, from its domains claim: a list of patterns, or one string
/// of comma-separated patterns. No claim: no names.
fn domain_patterns(value: Option<&Value>, claim: &str) -> Result<Vec<DomainPattern>, Reject> {
    let items: Vec<&str> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::trim))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Reject::Invalid(format!(
                    "the token's {claim} claim is not a list of strings"
                ))
            })?,
        Some(_) => {
            return Err(Reject::Invalid(format!(
                "the token's {claim} claim is not a list of domain patterns"
            )));
        }
    };
    items
        .into_iter()
        .map(|item| {
            DomainPattern::parse(item).map_err(|_| {
                Reject::Invalid(format!(
                    "the token's {claim} claim holds an invalid domain pattern"
                ))
            })
        })
        .collect()
}

/// Verified tokens by SHA-256, each with its principal, expiry and key generation.
#[derive(Debug, Default)]
struct TokenCache {
    entries: RwLock<HashMap<[u8; 32], Cached>>,
}

#[derive(Debug)]
struct Cached {
    principal: Principal,
    exp: i64,
    generation: u64,
}

impl TokenCache {
    fn get(&self, digest: &[u8; 32], now: i64, generation: u64) -> Option<Principal> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(digest)
            .filter(|hit| now < hit.exp && hit.generation == generation)
            .map(|hit| hit.principal.clone())
    }

    /// Keeps a verified token until its `exp` (never longer: the leeway is not extended to
    /// the cache), making room by dropping expired entries, then any one.
    fn insert(&self, key: [u8; 32], principal: &Principal, exp: i64, generation: u64, now: i64) {
        if exp <= now {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_CAPACITY && !entries.contains_key(&key) {
            entries.retain(|_, cached| now < cached.exp && cached.generation == generation);
            if entries.len() >= CACHE_CAPACITY {
                let victim = entries.keys().next().copied();
                if let Some(victim) = victim {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(
            key,
            Cached {
                principal: principal.clone(),
                exp,
                generation,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn scopes_from_scope_scp_and_roles() {
        let c = claims(json!({
            "scope": "certificates:request  openid",
            "scp": ["okta.read", 5],
            "roles": ["Certificates.Request"],
        }));
        let granted = granted_scopes(&c, Some("roles"));
        for scope in [
            "certificates:request",
            "openid",
            "okta.read",
            "Certificates.Request",
        ] {
            assert!(granted.contains(scope), "{scope}");
        }
        assert_eq!(granted.len(), 4);
        assert!(!granted_scopes(&c, None).contains("Certificates.Request"));
        let entra = claims(json!({"scp": "User.Read Certificates.Request"}));
        assert!(granted_scopes(&entra, None).contains("Certificates.Request"));
        assert!(granted_scopes(&claims(json!({"scope": 7})), None).is_empty());
    }

    #[test]
    fn domains_claim_shapes() {
        let names = |v: Option<Value>| {
            domain_patterns(v.as_ref(), "domains")
                .map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(
            names(Some(json!(["a.example.com", "*.b.example.com"]))),
            Ok(vec![
                "a.example.com".to_owned(),
                "*.b.example.com".to_owned()
            ])
        );
        assert_eq!(
            names(Some(json!("a.example.com, *.b.example.com"))),
            Ok(vec![
                "a.example.com".to_owned(),
                "*.b.example.com".to_owned()
            ])
        );
        assert_eq!(names(None), Ok(vec![]));
        assert_eq!(names(Some(json!(""))), Ok(vec![]));
        assert!(names(Some(json!(["a.example.com", 3]))).is_err());
        assert!(names(Some(json!({"a": 1}))).is_err());
        assert!(names(Some(json!(["bad..name"]))).is_err());
    }

    #[test]
    fn typ_values() {
        for ok in [
            None,
            Some("JWT"),
            Some("at+jwt"),
            Some("application/at+JWT"),
            Some("jwt"),
        ] {
            assert!(check_typ(ok).is_ok(), "{ok:?}");
        }
        for bad in ["dpop+jwt", "logout+jwt", "JWE", ""] {
            assert!(check_typ(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(
            numeric_date(Some(&json!(1_700_000_000))),
            Some(1_700_000_000)
        );
        assert_eq!(
            numeric_date(Some(&json!(1_700_000_000.9))),
            Some(1_700_000_000)
        );
        assert_eq!(numeric_date(Some(&json!("1700000000"))), None);
        assert_eq!(numeric_date(Some(&json!(1e300))), None);
        assert_eq!(numeric_date(None), None);
    }

    #[test]
    fn headers() {
        let encode = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.e30.c2ln",
            encode(json!({"alg": "ES256K", "typ": "JWT"}))
        );
        assert_eq!(parse_header(&token).expect("header").alg, "ES256K");
        // The reasons are what the client reads in the 401: their text is part of the API.
        let reason = |token: &str| parse_header(token).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            reason("a.b.c.d.e"),
            Err("encrypted tokens (JWE) are not accepted; send a signed JWT".to_owned())
        );
        let not_a_jwt = Err("the bearer token is not a JWT (header.payload.signature)".to_owned());
        assert_eq!(reason("not-a-jwt"), not_a_jwt);
        assert_eq!(reason("!!.e30.c2ln"), not_a_jwt);
        assert_eq!(
            reason(&format!("{}.e30.c2ln", "e".repeat(MAX_HEADER_CHARS + 1))),
            Err("the token's header is too large".to_owned())
        );
        assert_eq!(
            reason(&format!("{}.e30.c2ln", encode(json!({"typ": "JWT"})))),
            Err("the token's header is not a JOSE header with an alg".to_owned())
        );
    }

    fn rules(domains_claim: Option<&str>) -> Rules {
        Rules {
            audiences: vec!["https://certfleet.test".to_owned()],
            required_scopes: vec!["certificates:request".to_owned()],
            admin_scope: Some("certfleet:admin".to_owned()),
            domains_claim: domains_claim.map(str::to_owned),
            roles_claim: None,
            leeway: 60,
            every_domain: Arc::from(vec![DomainPattern::any()]),
            profiles: None,
            quota: None,
        }
    }

    fn key_set() -> KeySet {
        KeySet::for_tests("https://idp.test")
    }

    #[test]
    fn the_admin_scope_grants_administration_and_nothing_else_does() {
        let now = 1_800_000_000;
        let token = |scope: &str| {
            claims(json!({
                "iss": "https://idp.test", "aud": "https://certfleet.test", "exp": now + 300,
                "sub": "ops", "scope": scope, "domains": ["a.example.com"],
            }))
        };
        let set = key_set();
        let admin = |scope: &str| {
            rules(Some("domains"))
                .check(&token(scope), &set, now)
                .map(|(p, _)| p.admin)
        };
        assert_eq!(admin("certificates:request certfleet:admin"), Ok(true));
        assert_eq!(admin("certificates:request"), Ok(false));
        assert_eq!(admin("certificates:request certfleet:admins"), Ok(false));
        let mut without = rules(Some("domains"));
        without.admin_scope = None;
        let (principal, _) = without
            .check(&token("certificates:request certfleet:admin"), &set, now)
            .expect("valid");
        assert!(
            !principal.admin,
            "no adminScope configured: no token administers"
        );
    }

    #[test]
    fn claim_checks() {
        let now = 1_800_000_000;
        let good = json!({
            "iss": "https://idp.test", "aud": ["x", "https://certfleet.test"], "exp": now + 300,
            "nbf": now - 5, "sub": "client-a", "scope": "certificates:request",
            "domains": ["a.example.com"],
        });
        let set = key_set();
        let (principal, exp) = rules(Some("domains"))
            .check(&claims(good.clone()), &set, now)
            .expect("valid");
        assert_eq!(
            (&*principal.name, principal.method, exp),
            ("client-a", "jwt", now + 300)
        );
        assert_eq!(principal.domains.len(), 1);
        assert_eq!(principal.quota, None);
        // `auth.jwt.quota` is every token subject's.
        let quota = crate::config::Limit {
            count: 5,
            window: std::time::Duration::from_secs(604_800),
        };
        let limited = Rules {
            quota: Some(quota),
            ..rules(Some("domains"))
        };
        let (principal, _) = limited
            .check(&claims(good.clone()), &set, now)
            .expect("valid");
        assert_eq!(principal.quota, Some(quota));
        let (anyone, _) = rules(None)
            .check(&claims(good.clone()), &set, now)
            .expect("valid");
        assert!(anyone.domains[0].is_any());

        let with = |key: &str, value: Value| {
            let mut c = claims(good.clone());
            c.insert(key.to_owned(), value);
            rules(Some("domains")).check(&c, &set, now).map(|_| ())
        };
        let without = |key: &str| {
            let mut c = claims(good.clone());
            c.remove(key);
            rules(Some("domains"))
                .check(&c, &set, now)
                .map(|(p, _)| p.domains.len())
        };
        assert!(matches!(
            with("iss", json!("https://evil.test")),
            Err(Reject::Invalid(_))
        ));
        assert!(matches!(
            with("aud", json!("https://other.test")),
            Err(Reject::Invalid(_))
        ));
        assert!(matches!(
            with("exp", json!(now - 61)),
            Err(Reject::Invalid(_))
        ));
        assert_eq!(with("exp", json!(now - 30)), Ok(()), "within the leeway");
        assert!(matches!(
            with("nbf", json!(now + 61)),
            Err(Reject::Invalid(_))
        ));
        assert_eq!(with("nbf", json!(now + 30)), Ok(()), "within the leeway");
        assert!(matches!(
            with("scope", json!("other")),
            Err(Reject::Scope(_))
        ));
        assert!(matches!(without("exp"), Err(Reject::Invalid(_))));
        assert!(matches!(without("sub"), Err(Reject::Invalid(_))));
        assert_eq!(without("domains"), Ok(0), "no claim: no names");
    }

    #[test]
    fn cache_never_outlives_exp_or_the_keys() {
        let cache = TokenCache::default();
        let principal = Principal {
            name: "a".into(),
            method: "jwt",
            domains: Arc::from(vec![]),
            admin: false,
            profiles: None,
            quota: None,
        };
        cache.insert(sha256("t1"), &principal, 1_000, 7, 900);
        assert!(cache.get(&sha256("t1"), 999, 7).is_some());
        assert!(cache.get(&sha256("t1"), 1_000, 7).is_none(), "expired");
        assert!(cache.get(&sha256("t1"), 999, 8).is_none(), "keys changed");
        assert!(cache.get(&sha256("t2"), 999, 7).is_none());
        cache.insert(sha256("old"), &principal, 950, 7, 900);
        for i in 0..CACHE_CAPACITY + 10 {
            cache.insert(sha256(&format!("t{i}")), &principal, 2_000, 7, 960);
        }
        assert!(cache.len() <= CACHE_CAPACITY);
    }
}
