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

use super::address::{Address, printable};
use crate::util::duration::format_duration;

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
    pub fn parse(claims: &Map<String, Value>) -> Result<Self, String> {
        let issuer = match claims.get("iss") {
            Some(Value::String(iss)) => Address::parse(iss).map_err(|e| format!("iss: {e}"))?,
            Some(_) => return Err("iss is not a string".to_owned()),
            None => return Err("iss is missing (the signer's akash1 address)".to_owned()),
        };
        let issued_at = timestamp(claims, "iat")?;
        let not_before = timestamp(claims, "nbf")?;
        let expires_at = timestamp(claims, "exp")?;
        match claims.get("version") {
            Some(Value::String(v)) if v == "v1" => {}
            Some(_) => return Err("version is not \"v1\"".to_owned()),
            None => return Err("version is missing (it must be \"v1\")".to_owned()),
        }
        let jti = match claims.get("jti") {
            None => None,
            Some(Value::String(jti)) if !jti.is_empty() => Some(jti.clone()),
            Some(_) => return Err("jti is not a non-empty string".to_owned()),
        };
        let leases = match claims.get("leases") {
            Some(Value::Object(leases)) => parse_leases(leases)?,
            Some(_) => return Err("leases is not an object".to_owned()),
            None => return Err("leases is missing".to_owned()),
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
    pub fn check(&self, claims: &Claims, now: i64) -> Result<(), String> {
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let (nbf, exp) = (claims.not_before, claims.expires_at);
        if exp <= nbf {
            return Err(format!(
                "the token's exp ({exp}) is not after its nbf ({nbf}): it is never valid"
            ));
        }
        if let Some(max) = self.max_lifetime {
            let lifetime = exp - nbf;
            if u64::try_from(lifetime).unwrap_or(u64::MAX) > max.as_secs() {
                return Err(format!(
                    "the token is valid for {} (exp - nbf), longer than the {} allowed; the \
                     Akash SDK's JwtTokenManager.generateToken makes tokens valid for 1 hour \
                     unless exp is given: pass exp: Math.floor(Date.now() / 1000) + 900 (15 \
                     minutes), or mint one with `certfleet akash token --lifetime 15m`",
                    format_duration(Duration::from_secs(u64::try_from(lifetime).unwrap_or(0))),
                    format_duration(max)
                ));
            }
        }
        if now.saturating_add(leeway) < nbf {
            return Err(format!(
                "the token is not valid yet: nbf is {}s in the future",
                nbf - now
            ));
        }
        if now >= exp.saturating_add(leeway) {
            return Err(format!("the token expired {}s ago (exp)", now - exp));
        }
        if now.saturating_add(leeway) < claims.issued_at {
            return Err(format!(
                "the token's iat is {}s in the future",
                claims.issued_at - now
            ));
        }
        Ok(())
    }
}

/// A required NumericDate (RFC 7519 section 2), here an integer number of seconds.
fn timestamp(claims: &Map<String, Value>, key: &str) -> Result<i64, String> {
    match claims.get(key) {
        None => Err(format!("{key} is missing")),
        Some(value) => value
            .as_i64()
            .filter(|t| *t >= 0)
            .ok_or_else(|| format!("{key} is not a whole, non-negative number of seconds")),
    }
}

fn parse_leases(leases: &Map<String, Value>) -> Result<Leases, String> {
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
                    return Err(format!(
                        "{path}.provider: {} is listed twice; give each provider one entry",
                        permission.provider
                    ));
                }
                permissions.push(permission);
            }
            Ok(Leases::Granular(permissions))
        }
    }
}

fn parse_permission(item: &Value, path: &str) -> Result<Permission, String> {
    let Value::Object(permission) = item else {
        return Err(format!("{path} is not an object"));
    };
    let provider = match permission.get("provider") {
        Some(Value::String(text)) => {
            Address::parse(text).map_err(|e| format!("{path}.provider: {e}"))?
        }
        Some(_) => return Err(format!("{path}.provider is not a string")),
        None => return Err(format!("{path}.provider is missing")),
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

fn parse_deployment(item: &Value, path: &str) -> Result<DeploymentPermission, String> {
    let Value::Object(deployment) = item else {
        return Err(format!("{path} is not an object"));
    };
    let scope = scopes(deployment.get("scope"), &format!("{path}.scope"))?;
    let dseq = match deployment.get("dseq") {
        None => return Err(format!("{path}.dseq is missing")),
        Some(value) => value
            .as_u64()
            .filter(|d| *d > 0)
            .ok_or_else(|| format!("{path}.dseq is not a whole number above 0"))?,
    };
    let sequence = |key: &str| -> Result<Option<u32>, String> {
        deployment
            .get(key)
            .map(|value| {
                value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{path}.{key} is not a whole number from 0 to 2^32-1"))
            })
            .transpose()
    };
    let (gseq, oseq) = (sequence("gseq")?, sequence("oseq")?);
    match (gseq, oseq) {
        (None, Some(_)) => {
            return Err(format!("{path}.oseq is set without gseq; set gseq too"));
        }
        (Some(0), Some(o)) if o > 0 => {
            return Err(format!(
                "{path}.oseq is {o} but gseq is 0 (any group); an order needs its group"
            ));
        }
        _ => {}
    }
    let items = non_empty_array(deployment.get("services"), &format!("{path}.services"))?;
    let mut services: Vec<String> = Vec::with_capacity(items.len());
    for (k, item) in items.iter().enumerate() {
        match item {
            Value::String(name) if !name.is_empty() => {
                if services.contains(name) {
                    return Err(format!(
                        "{path}.services[{k}]: \"{}\" is listed twice",
                        printable(name)
                    ));
                }
                services.push(name.clone());
            }
            _ => return Err(format!("{path}.services[{k}] is not a non-empty string")),
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
fn access<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a str, String> {
    match value {
        Some(Value::String(a)) if ["full", "scoped", "granular"].contains(&a.as_str()) => Ok(a),
        Some(Value::String(a)) => Err(format!(
            "{path} \"{}\" is not full, scoped or granular",
            printable(a)
        )),
        Some(_) => Err(format!("{path} is not a string")),
        None => Err(format!("{path} is missing")),
    }
}

fn forbid(present: bool, path: &str, with: &str) -> Result<(), String> {
    if present {
        Err(format!("{path} is not allowed with {with}"))
    } else {
        Ok(())
    }
}

fn non_empty_array<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a [Value], String> {
    match value {
        Some(Value::Array(items)) if !items.is_empty() => Ok(items),
        Some(Value::Array(_)) => Err(format!("{path} is empty")),
        Some(_) => Err(format!("{path} is not a list")),
        None => Err(format!("{path} is missing")),
    }
}

/// A non-empty list of known scopes without duplicates.
fn scopes(value: Option<&Value>, path: &str) -> Result<Scopes, String> {
    let items = non_empty_array(value, path)?;
    let mut set = Scopes::default();
    for (i, item) in items.iter().enumerate() {
        let Value::String(name) = item else {
            return Err(format!("{path}[{i}] is not a string"));
        };
        let scope = Scope::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = SCOPES.iter().map(|(_, n)| *n).collect();
            format!(
                "{path}[{i}] \"{}\" is not a scope (one of {})",
                printable(name),
                known.join(", ")
            )
        })?;
        if set.contains(scope) {
            return Err(format!("{path}[{i}] \"{scope}\" is listed twice"));
        }
        set.0 |= 1 << scope.bit();
    }
    Ok(set)
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
