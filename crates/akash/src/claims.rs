//! The claims of an Akash provider-API token and their rules (AEP-64; the reference is the Go
//! `util/jwt` package of the Akash chain SDK, with the TypeScript SDK's JSON schema).
//!
//! Parsed once into types ("parse, don't validate"): a [`Claims`] value exists only when every
//! rule holds. A key that is present counts as set, even as an empty array or `null`: a
//! `scoped` token with `"permissions": []` is refused. Unknown claims are ignored (RFC 7519
//! section 4). Time is checked apart, by [`Validity`], with `now` as an input.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::address::{Address, AddressError, printable};
use crate::duration::format_duration;

/// One action a token may permit on a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `send-manifest`
    SendManifest,
    /// `get-manifest`
    GetManifest,
    /// `logs`
    Logs,
    /// `shell`
    Shell,
    /// `events`
    Events,
    /// `status`
    Status,
    /// `restart`
    Restart,
    /// `hostname-migrate`
    HostnameMigrate,
    /// `ip-migrate`
    IpMigrate,
    /// `attestation`
    Attestation,
}

/// Every scope with its wire name, in the bit order of [`Scopes`].
const SCOPES: [(Scope, &str); 10] = [
    (Scope::SendManifest, "send-manifest"),
    (Scope::GetManifest, "get-manifest"),
    (Scope::Logs, "logs"),
    (Scope::Shell, "shell"),
    (Scope::Events, "events"),
    (Scope::Status, "status"),
    (Scope::Restart, "restart"),
    (Scope::HostnameMigrate, "hostname-migrate"),
    (Scope::IpMigrate, "ip-migrate"),
    (Scope::Attestation, "attestation"),
];

impl Scope {
    /// The wire name, such as `send-manifest`.
    pub fn name(self) -> &'static str {
        SCOPES[self.bit()].1
    }

    /// The scope a wire name means.
    pub fn from_name(name: &str) -> Option<Self> {
        SCOPES.iter().find(|(_, n)| *n == name).map(|(s, _)| *s)
    }

    fn bit(self) -> usize {
        SCOPES
            .iter()
            .position(|(s, _)| *s == self)
            .unwrap_or_default()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A non-empty set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u16);

impl Scopes {
    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & (1 << scope.bit()) != 0
    }

    /// The scopes in the set, in the order of the list above.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        SCOPES
            .into_iter()
            .map(|(s, _)| s)
            .filter(move |s| self.contains(*s))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Scope::name)).finish()
    }
}

/// The verified claims of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `iss`: the wallet that signed the token and owns the leases it speaks for.
    pub issuer: Address,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `nbf`, Unix seconds.
    pub not_before: i64,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// `jti`, if any.
    pub jti: Option<String>,
    /// `leases`: what the token permits.
    pub leases: Leases,
}

/// `leases.access` and what comes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leases {
    /// `full`: every action on every lease of the issuer, with any provider.
    Full,
    /// `scoped`: these actions on every lease of the issuer, with any provider.
    Scoped(Scopes),
    /// `granular`: per provider, in `leases.permissions` (providers unique).
    Granular(Vec<Permission>),
}

/// One item of `leases.permissions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// `provider`: the provider this entry is for.
    pub provider: Address,
    /// `access` and what comes with it.
    pub access: ProviderAccess,
}

/// A permission's `access`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderAccess {
    /// `full`: every action on the issuer's leases with this provider.
    Full,
    /// `scoped`: these actions on the issuer's leases with this provider.
    Scoped(Scopes),
    /// `granular`: per deployment.
    Granular(Vec<DeploymentPermission>),
}

/// One item of a granular permission's `deployments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentPermission {
    /// `dseq`, more than 0.
    pub dseq: u64,
    /// `gseq`; 0 (or absent) means any group.
    pub gseq: u32,
    /// `oseq`; 0 (or absent) means any order.
    pub oseq: u32,
    /// `scope`: the permitted actions.
    pub scope: Scopes,
    /// `services`: the services of the lease these actions may touch (unique, non-empty).
    pub services: Vec<String>,
}

impl Claims {
    /// Applies every rule to a decoded payload.
    pub fn parse(claims: &Map<String, Value>) -> Result<Self, ClaimsError> {
        let issuer = match claims.get("iss") {
            Some(Value::String(iss)) => {
                Address::parse(iss).map_err(|source| ClaimsError::Address {
                    path: "iss".to_owned(),
                    source: Box::new(source),
                })?
            }
            Some(_) => return Err(not_a("iss", "a string")),
            None => return Err(ClaimsError::MissingIssuer),
        };
        let issued_at = timestamp(claims, "iat")?;
        let not_before = timestamp(claims, "nbf")?;
        let expires_at = timestamp(claims, "exp")?;
        match claims.get("version") {
            Some(Value::String(v)) if v == "v1" => {}
            Some(_) => return Err(ClaimsError::UnknownVersion),
            None => return Err(ClaimsError::MissingVersion),
        }
        let jti = match claims.get("jti") {
            None => None,
            Some(Value::String(jti)) if !jti.is_empty() => Some(jti.clone()),
            Some(_) => return Err(not_a("jti", "a non-empty string")),
        };
        let leases = match claims.get("leases") {
            Some(Value::Object(leases)) => parse_leases(leases)?,
            Some(_) => return Err(not_a("leases", "an object")),
            None => return Err(missing("leases")),
        };
        Ok(Self {
            issuer,
            issued_at,
            not_before,
            expires_at,
            jti,
            leases,
        })
    }

    /// Whether the token is `granular` and names `provider` in `leases.permissions`: what a
    /// service that wants tokens minted for it alone (an audience) asks.
    pub fn names_provider(&self, provider: &Address) -> bool {
        match &self.leases {
            Leases::Granular(permissions) => permissions.iter().any(|p| &p.provider == provider),
            Leases::Full | Leases::Scoped(_) => false,
        }
    }
}

/// A claim rule a token breaks. `path` names the offending value as the token spells it
/// (`leases.permissions[0].deployments[1].scope[2]`); untrusted text in a message is cut to 64
/// printable characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// A required claim or field is absent.
    #[error("{path} is missing")]
    Missing {
        /// Where it should be.
        path: String,
    },
    /// No `iss`.
    #[error("iss is missing (the signer's akash1 address)")]
    MissingIssuer,
    /// No `version`.
    #[error("version is missing (it must be \"v1\")")]
    MissingVersion,
    /// A `version` other than `"v1"`.
    #[error("version is not \"v1\"")]
    UnknownVersion,
    /// A value of the wrong type or out of its range.
    #[error("{path} is not {expected}")]
    NotA {
        /// The value.
        path: String,
        /// What it must be, such as "a string" or "a whole number above 0".
        expected: &'static str,
    },
    /// An address (`iss`, a provider) that is not an Akash account address.
    #[error("{path}: {source}")]
    Address {
        /// The value.
        path: String,
        /// Why it is not an address (boxed: it is large and rare, and every claim check
        /// returns this type).
        source: Box<AddressError>,
    },
    /// An empty list where the rules ask for at least one item.
    #[error("{path} is empty")]
    Empty {
        /// The list.
        path: String,
    },
    /// A field that means nothing with this `access` (the reference refuses it too).
    #[error("{path} is not allowed with {with}")]
    NotAllowed {
        /// The field.
        path: String,
        /// The access it comes with, such as "access full".
        with: &'static str,
    },
    /// An `access` other than `full`, `scoped` and `granular`.
    #[error("{path} \"{access}\" is not full, scoped or granular")]
    UnknownAccess {
        /// The value.
        path: String,
        /// What it says.
        access: String,
    },
    /// A scope name this version of AEP-64 does not define.
    #[error("{path} \"{name}\" is not a scope (one of {known})", known = scope_names())]
    UnknownScope {
        /// The item.
        path: String,
        /// What it says.
        name: String,
    },
    /// A scope listed twice in one list.
    #[error("{path} \"{scope}\" is listed twice")]
    DuplicateScope {
        /// The second item.
        path: String,
        /// The scope.
        scope: Scope,
    },
    /// Two `leases.permissions` entries for one provider.
    #[error("{path}: {provider} is listed twice; give each provider one entry")]
    DuplicateProvider {
        /// The second entry's `provider`.
        path: String,
        /// The provider.
        provider: Address,
    },
    /// A service listed twice in one deployment's `services`.
    #[error("{path}: \"{service}\" is listed twice")]
    DuplicateService {
        /// The second item.
        path: String,
        /// The service.
        service: String,
    },
    /// An `oseq` without the `gseq` of its group.
    #[error("{path} is set without gseq; set gseq too")]
    OrderWithoutGroup {
        /// The `oseq`.
        path: String,
    },
    /// An `oseq` in "any group" (`gseq` 0): an order exists only within its group.
    #[error("{path} is {oseq} but gseq is 0 (any group); an order needs its group")]
    OrderInAnyGroup {
        /// The `oseq`.
        path: String,
        /// Its value.
        oseq: u32,
    },
}

fn missing(path: &str) -> ClaimsError {
    ClaimsError::Missing {
        path: path.to_owned(),
    }
}

fn not_a(path: &str, expected: &'static str) -> ClaimsError {
    ClaimsError::NotA {
        path: path.to_owned(),
        expected,
    }
}

/// Every scope's wire name, for the message about an unknown one.
fn scope_names() -> String {
    let names: Vec<&str> = SCOPES.iter().map(|(_, n)| *n).collect();
    names.join(", ")
}

/// When a token may be used: `nbf - leeway <= now < exp + leeway`, and at most
/// `max_lifetime` between `nbf` and `exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Clock skew tolerated on both ends (the reference tolerates none).
    pub leeway: Duration,
    /// The longest `exp - nbf` accepted; `None` for no limit (as the reference).
    pub max_lifetime: Option<Duration>,
}

impl Validity {
    /// Checks the token's times at `now` (Unix seconds).
    pub fn check(&self, claims: &Claims, now: i64) -> Result<(), ValidityError> {
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let (nbf, exp) = (claims.not_before, claims.expires_at);
        if exp <= nbf {
            return Err(ValidityError::NeverValid { nbf, exp });
        }
        if let Some(max) = self.max_lifetime {
            let lifetime = exp - nbf;
            if u64::try_from(lifetime).unwrap_or(u64::MAX) > max.as_secs() {
                return Err(ValidityError::TooLong {
                    lifetime: Duration::from_secs(u64::try_from(lifetime).unwrap_or(0)),
                    max,
                });
            }
        }
        if now.saturating_add(leeway) < nbf {
            return Err(ValidityError::NotYetValid { in_secs: nbf - now });
        }
        if now >= exp.saturating_add(leeway) {
            return Err(ValidityError::Expired {
                ago_secs: now - exp,
            });
        }
        if now.saturating_add(leeway) < claims.issued_at {
            return Err(ValidityError::IssuedInFuture {
                in_secs: claims.issued_at - now,
            });
        }
        Ok(())
    }
}

/// A time rule a token breaks at the time it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    /// `exp` is not after `nbf`.
    #[error("the token's exp ({exp}) is not after its nbf ({nbf}): it is never valid")]
    NeverValid {
        /// `nbf`, Unix seconds.
        nbf: i64,
        /// `exp`, Unix seconds.
        exp: i64,
    },
    /// `exp - nbf` is more than [`Validity::max_lifetime`]. The message names the usual cause,
    /// the TypeScript SDK's one-hour default, and how to mint a shorter token.
    #[error(
        "the token is valid for {} (exp - nbf), longer than the {} allowed; the Akash SDK's \
         JwtTokenManager.generateToken makes tokens valid for 1 hour unless exp is given: pass \
         exp: Math.floor(Date.now() / 1000) + 900 (15 minutes), or mint one with `certfleet \
         akash token --lifetime 15m`",
        format_duration(*.lifetime),
        format_duration(*.max)
    )]
    TooLong {
        /// `exp - nbf`.
        lifetime: Duration,
        /// The longest allowed.
        max: Duration,
    },
    /// `nbf` is ahead of the clock by more than the leeway.
    #[error("the token is not valid yet: nbf is {in_secs}s in the future")]
    NotYetValid {
        /// Seconds from now to `nbf`.
        in_secs: i64,
    },
    /// `exp` has passed by more than the leeway.
    #[error("the token expired {ago_secs}s ago (exp)")]
    Expired {
        /// Seconds from `exp` to now.
        ago_secs: i64,
    },
    /// `iat` is ahead of the clock by more than the leeway.
    #[error("the token's iat is {in_secs}s in the future")]
    IssuedInFuture {
        /// Seconds from now to `iat`.
        in_secs: i64,
    },
}

/// A required NumericDate (RFC 7519 section 2), here an integer number of seconds.
fn timestamp(claims: &Map<String, Value>, key: &str) -> Result<i64, ClaimsError> {
    match claims.get(key) {
        None => Err(missing(key)),
        Some(value) => value
            .as_i64()
            .filter(|t| *t >= 0)
            .ok_or_else(|| not_a(key, "a whole, non-negative number of seconds")),
    }
}

fn parse_leases(leases: &Map<String, Value>) -> Result<Leases, ClaimsError> {
    let has = |key: &str| leases.contains_key(key);
    match access(leases.get("access"), "leases.access")? {
        "full" => {
            forbid(has("permissions"), "leases.permissions", "access full")?;
            forbid(has("scope"), "leases.scope", "access full")?;
            Ok(Leases::Full)
        }
        "scoped" => {
            forbid(has("permissions"), "leases.permissions", "access scoped")?;
            Ok(Leases::Scoped(scopes(leases.get("scope"), "leases.scope")?))
        }
        _ => {
            // The TypeScript SDK's schema refuses a scope beside granular permissions; it
            // would mean nothing, each permission carrying its own.
            forbid(has("scope"), "leases.scope", "access granular")?;
            let items = non_empty_array(leases.get("permissions"), "leases.permissions")?;
            let mut providers = HashSet::new();
            let mut permissions = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let path = format!("leases.permissions[{i}]");
                let permission = parse_permission(item, &path)?;
                if !providers.insert(permission.provider.clone()) {
                    return Err(ClaimsError::DuplicateProvider {
                        path: format!("{path}.provider"),
                        provider: permission.provider,
                    });
                }
                permissions.push(permission);
            }
            Ok(Leases::Granular(permissions))
        }
    }
}

fn parse_permission(item: &Value, path: &str) -> Result<Permission, ClaimsError> {
    let Value::Object(permission) = item else {
        return Err(not_a(path, "an object"));
    };
    let provider = match permission.get("provider") {
        Some(Value::String(text)) => {
            Address::parse(text).map_err(|source| ClaimsError::Address {
                path: format!("{path}.provider"),
                source: Box::new(source),
            })?
        }
        Some(_) => return Err(not_a(&format!("{path}.provider"), "a string")),
        None => return Err(missing(&format!("{path}.provider"))),
    };
    let has = |key: &str| permission.contains_key(key);
    let access = match access(permission.get("access"), &format!("{path}.access"))? {
        "full" => {
            forbid(has("scope"), &format!("{path}.scope"), "access full")?;
            forbid(
                has("deployments"),
                &format!("{path}.deployments"),
                "access full",
            )?;
            ProviderAccess::Full
        }
        "scoped" => {
            forbid(
                has("deployments"),
                &format!("{path}.deployments"),
                "access scoped",
            )?;
            ProviderAccess::Scoped(scopes(permission.get("scope"), &format!("{path}.scope"))?)
        }
        _ => {
            forbid(has("scope"), &format!("{path}.scope"), "access granular")?;
            let items = non_empty_array(
                permission.get("deployments"),
                &format!("{path}.deployments"),
            )?;
            let deployments = items
                .iter()
                .enumerate()
                .map(|(j, item)| parse_deployment(item, &format!("{path}.deployments[{j}]")))
                .collect::<Result<_, _>>()?;
            ProviderAccess::Granular(deployments)
        }
    };
    Ok(Permission { provider, access })
}

fn parse_deployment(item: &Value, path: &str) -> Result<DeploymentPermission, ClaimsError> {
    let Value::Object(deployment) = item else {
        return Err(not_a(path, "an object"));
    };
    let scope = scopes(deployment.get("scope"), &format!("{path}.scope"))?;
    let dseq = match deployment.get("dseq") {
        None => return Err(missing(&format!("{path}.dseq"))),
        Some(value) => value
            .as_u64()
            .filter(|d| *d > 0)
            .ok_or_else(|| not_a(&format!("{path}.dseq"), "a whole number above 0"))?,
    };
    let sequence = |key: &str| -> Result<Option<u32>, ClaimsError> {
        deployment
            .get(key)
            .map(|value| {
                value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        not_a(&format!("{path}.{key}"), "a whole number from 0 to 2^32-1")
                    })
            })
            .transpose()
    };
    let (gseq, oseq) = (sequence("gseq")?, sequence("oseq")?);
    match (gseq, oseq) {
        (None, Some(_)) => {
            return Err(ClaimsError::OrderWithoutGroup {
                path: format!("{path}.oseq"),
            });
        }
        (Some(0), Some(o)) if o > 0 => {
            return Err(ClaimsError::OrderInAnyGroup {
                path: format!("{path}.oseq"),
                oseq: o,
            });
        }
        _ => {}
    }
    let items = non_empty_array(deployment.get("services"), &format!("{path}.services"))?;
    let mut services: Vec<String> = Vec::with_capacity(items.len());
    for (k, item) in items.iter().enumerate() {
        match item {
            Value::String(name) if !name.is_empty() => {
                if services.contains(name) {
                    return Err(ClaimsError::DuplicateService {
                        path: format!("{path}.services[{k}]"),
                        service: printable(name),
                    });
                }
                services.push(name.clone());
            }
            _ => {
                return Err(not_a(
                    &format!("{path}.services[{k}]"),
                    "a non-empty string",
                ));
            }
        }
    }
    Ok(DeploymentPermission {
        dseq,
        gseq: gseq.unwrap_or(0),
        oseq: oseq.unwrap_or(0),
        scope,
        services,
    })
}

/// `access`: `full`, `scoped` or `granular`.
fn access<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a str, ClaimsError> {
    match value {
        Some(Value::String(a)) if ["full", "scoped", "granular"].contains(&a.as_str()) => Ok(a),
        Some(Value::String(a)) => Err(ClaimsError::UnknownAccess {
            path: path.to_owned(),
            access: printable(a),
        }),
        Some(_) => Err(not_a(path, "a string")),
        None => Err(missing(path)),
    }
}

fn forbid(present: bool, path: &str, with: &'static str) -> Result<(), ClaimsError> {
    if present {
        Err(ClaimsError::NotAllowed {
            path: path.to_owned(),
            with,
        })
    } else {
        Ok(())
    }
}

fn non_empty_array<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a [Value], ClaimsError> {
    match value {
        Some(Value::Array(items)) if !items.is_empty() => Ok(items),
        Some(Value::Array(_)) => Err(ClaimsError::Empty {
            path: path.to_owned(),
        }),
        Some(_) => Err(not_a(path, "a list")),
        None => Err(missing(path)),
    }
}

/// A non-empty list of known scopes without duplicates.
fn scopes(value: Option<&Value>, path: &str) -> Result<Scopes, ClaimsError> {
    let items = non_empty_array(value, path)?;
    let mut set = Scopes::default();
    for (i, item) in items.iter().enumerate() {
        let Value::String(name) = item else {
            return Err(not_a(&format!("{path}[{i}]"), "a string"));
        };
        let scope = Scope::from_name(name).ok_or_else(|| ClaimsError::UnknownScope {
            path: format!("{path}[{i}]"),
            name: printable(name),
        })?;
        if set.contains(scope) {
            return Err(ClaimsError::DuplicateScope {
                path: format!("{path}[{i}]"),
                scope,
            });
        }
        set.0 |= 1 << scope.bit();
    }
    Ok(set)
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
