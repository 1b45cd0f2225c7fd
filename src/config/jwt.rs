//! `auth.jwt`: OIDC / OAuth 2.0 bearer tokens (RFC 9068 access tokens, Kubernetes
//! service-account tokens) checked against an identity provider's published keys.
//!
//! Everything that can be decided without the provider is decided here, so a bad value stops
//! the process before it binds a port: the issuer URL's scheme, the audience, the algorithm
//! allow-list (never `none`, never HMAC: RFC 8725 section 3.1), the token size bound.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use jsonwebtoken::Algorithm;
use serde::{Serialize, Serializer};

use super::{
    print::{as_duration, as_optional_path},
    raw::RawJwt,
    report::{Report, Reported, non_empty, pem_certificates_file},
};

use crate::util::duration::parse_duration;

/// Clock skew tolerated on `exp` and `nbf` unless `auth.jwt.leeway` says otherwise.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Beyond this, an expired token stays usable long enough to matter.
const MAX_LEEWAY: Duration = Duration::from_secs(600);
/// `auth.jwt.maxTokenBytes` default: real access tokens are 1-2 KiB, Entra ID's up to ~4 KiB.
const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Smaller than any signed token with an RSA-2048 signature.
const MIN_MAX_TOKEN_BYTES: usize = 512;
/// The API's whole header limit (`api::MAX_HEADER_BYTES`): a larger token never arrives.
const MAX_MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The asymmetric algorithms accepted when `auth.jwt.algorithms` is not set.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];
const ALGORITHM_NAMES: &str = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// `auth.jwt`: the identity provider whose access tokens certfleet accepts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtConfig {
    /// `auth.jwt.issuerUrl`: discovery is at `{issuerUrl}/.well-known/openid-configuration`,
    /// whose `issuer` must equal it (a trailing slash aside). `https://`, or `http://` for a
    /// loopback host.
    pub issuer_url: String,
    /// `auth.jwt.audience` (one value or a list): a token's `aud` must contain one of them.
    #[serde(rename = "audience")]
    pub audiences: Vec<String>,
    /// `auth.jwt.requiredScopes`: every one must be granted (`scope`, `scp` or the roles claim),
    /// else 403 `insufficient_scope`. Empty: no scope is required.
    pub required_scopes: Vec<String>,
    /// `auth.jwt.adminScope`: a token granted this scope (`scope`, `scp` or the roles claim) may
    /// also administer certfleet (list every certificate, revoke, delete). `None`: no token may.
    pub admin_scope: Option<String>,
    /// `auth.jwt.domainsClaim`: the claim listing the names a token may request. `None`: every
    /// domain (warned at start).
    pub domains_claim: Option<String>,
    /// `auth.jwt.rolesClaim`: a claim whose values count as granted scopes (Entra ID app roles
    /// arrive in `roles`, not in `scp`).
    pub roles_claim: Option<String>,
    /// `auth.jwt.leeway`: clock skew tolerated on `exp` and `nbf` (default 60s, at most 10m).
    #[serde(serialize_with = "as_duration")]
    pub leeway: Duration,
    /// `auth.jwt.algorithms`: the accepted `alg` values; asymmetric only.
    #[serde(serialize_with = "as_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// `auth.jwt.maxTokenBytes`: longer bearer tokens are refused unread (default 8192).
    pub max_token_bytes: usize,
    /// `auth.jwt.caCertificates`: PEM roots added to the system's for the provider's HTTPS
    /// (a private CA, the Kubernetes API server's).
    #[serde(serialize_with = "as_optional_path")]
    pub ca_certificates: Option<PathBuf>,
    /// `auth.jwt.profiles`: the ACME profiles every token may ask for besides the default;
    /// absent: any.
    pub profiles: Option<Vec<crate::domain::Profile>>,
    /// `auth.jwt.quota`: the most new certificates each token subject may obtain per window;
    /// absent: no quota.
    pub quota: Option<super::limits::Limit>,
}

/// Resolves `auth.jwt`, reporting every problem in it; `None` when the section is absent.
pub(super) fn jwt(
    raw: Option<RawJwt>,
    report: &mut Report<'_>,
) -> Result<Option<JwtConfig>, Reported> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let issuer_url = issuer_url(non_empty(raw.issuer_url), report);
    let audiences = audiences(raw.audience.map(|a| a.0), report);
    let required_scopes = scopes(raw.required_scopes, report);
    let admin_scope = match non_empty(raw.admin_scope) {
        Some(scope) if scope.contains(char::is_whitespace) => Err(report.error(
            "auth.jwt.adminScope",
            "is not one scope (it holds a space); name the one scope that grants \
             administration, such as certfleet:admin",
        )),
        other => Ok(other),
    };
    let domains_claim = claim_name("auth.jwt.domainsClaim", raw.domains_claim, report);
    let roles_claim = claim_name("auth.jwt.rolesClaim", raw.roles_claim, report);
    let leeway = leeway(raw.leeway, report);
    let algorithms = algorithms(raw.algorithms, report);
    let max_token_bytes = max_token_bytes(raw.max_token_bytes, report);
    let ca_certificates = non_empty(raw.ca_certificates)
        .map(|path| {
            pem_certificates_file(
                path,
                "auth.jwt.caCertificates",
                "point it at a PEM file of the CA certificates that sign your identity \
         provider's HTTPS certificate",
                report,
            )
        })
        .transpose();
    let profiles = super::report::profiles("auth.jwt.profiles", raw.profiles, report);
    let quota = super::limits::quota("auth.jwt.quota", raw.quota, report);
    let config = JwtConfig {
        issuer_url: issuer_url?,
        audiences: audiences?,
        required_scopes: required_scopes?,
        admin_scope: admin_scope?,
        domains_claim: domains_claim?,
        roles_claim: roles_claim?,
        leeway: leeway?,
        algorithms: algorithms?,
        max_token_bytes: max_token_bytes?,
        ca_certificates: ca_certificates?,
        profiles: profiles?,
        quota: quota?,
    };
    if config.domains_claim.is_none() {
        report.warn(format!(
            "auth.jwt has no domainsClaim: every token {} issues for this audience may request \
             certificates for every domain; set auth.jwt.domainsClaim to limit each client",
            config.issuer_url
        ));
    }
    Ok(Some(config))
}

fn issuer_url(value: Option<String>, report: &mut Report<'_>) -> Result<String, Reported> {
    const KEY: &str = "auth.jwt.issuerUrl";
    let Some(text) = value else {
        return Err(report.error(
            KEY,
            "is required with auth.jwt: your identity provider's issuer, such as \
             https://login.example.com (its discovery document is at \
             {issuerUrl}/.well-known/openid-configuration)",
        ));
    };
    check_issuer_url(&text).map_err(|message| report.error(KEY, message))?;
    Ok(text)
}

/// An `https://` URL without query or fragment (OpenID Connect Discovery section 3); `http://`
/// only for a loopback host, where a test provider runs.
fn check_issuer_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("\"{text}\" is not a URL ({e}); write it like https://login.example.com")
    })?;
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "\"{text}\" uses http:// for a host that is not loopback; use https:// (http:// \
                 is allowed only for 127.0.0.0/8, ::1 and localhost)"
            ));
        }
        _ => return Err(format!("\"{text}\" is not an https:// URL")),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "\"{text}\" has a query, a fragment or user info, which an issuer never has; use the \
             issuer exactly as your provider's discovery document names it"
        ));
    }
    Ok(())
}

fn audiences(value: Option<Vec<String>>, report: &mut Report<'_>) -> Result<Vec<String>, Reported> {
    const KEY: &str = "auth.jwt.audience";
    let list: Vec<String> = value
        .unwrap_or_default()
        .into_iter()
        .filter(|a| !a.is_empty())
        .collect();
    if list.is_empty() {
        return Err(report.error(
            KEY,
            "is required with auth.jwt: the value your provider puts in the tokens' aud claim \
             for certfleet, such as https://certfleet.example.com (RFC 9068 section 4)",
        ));
    }
    Ok(list)
}

fn scopes(value: Option<Vec<String>>, report: &mut Report<'_>) -> Result<Vec<String>, Reported> {
    let list = value.unwrap_or_default();
    let mut failure = None;
    for (i, scope) in list.iter().enumerate() {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            failure = Some(report.error(
                &format!("auth.jwt.requiredScopes[{i}]"),
                "is not one scope (empty, or holds a space); list each scope as its own item",
            ));
        }
    }
    failure.map_or(Ok(list), Err)
}

fn claim_name(
    key: &str,
    value: Option<String>,
    report: &mut Report<'_>,
) -> Result<Option<String>, Reported> {
    match non_empty(value) {
        Some(name) if name.contains(char::is_control) => Err(report.error(
            key,
            "contains a control character; write the claim's name, such as domains",
        )),
        other => Ok(other),
    }
}

fn leeway(value: Option<String>, report: &mut Report<'_>) -> Result<Duration, Reported> {
    const KEY: &str = "auth.jwt.leeway";
    let Some(text) = value else {
        return Ok(DEFAULT_LEEWAY);
    };
    match parse_duration(&text) {
        Err(message) => Err(report.error(KEY, message)),
        Ok(leeway) if leeway > MAX_LEEWAY => Err(report.error(
            KEY,
            format!(
                "\"{text}\" is more than the 10m maximum: expired tokens would stay usable; fix \
                 the clocks instead (default 60s)"
            ),
        )),
        Ok(leeway) => Ok(leeway),
    }
}

fn algorithms(
    value: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Vec<Algorithm>, Reported> {
    let Some(list) = value else {
        return Ok(DEFAULT_ALGORITHMS.to_vec());
    };
    if list.is_empty() {
        return Err(report.error(
            "auth.jwt.algorithms",
            format!("is empty, which would refuse every token; list some of {ALGORITHM_NAMES}"),
        ));
    }
    let mut algorithms = Vec::with_capacity(list.len());
    let mut failure = None;
    for (i, name) in list.iter().enumerate() {
        match parse_algorithm(name) {
            Ok(algorithm) => algorithms.push(algorithm),
            Err(message) => {
                failure = Some(report.error(&format!("auth.jwt.algorithms[{i}]"), message));
            }
        }
    }
    failure.map_or(Ok(algorithms), Err)
}

/// One asymmetric JWS algorithm name. `none` and HMAC are refused outright: a provider's JWKS
/// publishes public keys, and an HMAC "verified" with one is the classic algorithm-confusion
/// forgery (RFC 8725 sections 2.1 and 3.1).
fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    match name {
        "none" | "None" | "NONE" => Err(
            "\"none\" (unsigned tokens) is never accepted: anyone could write such a token"
                .to_owned(),
        ),
        "HS256" | "HS384" | "HS512" => Err(format!(
            "\"{name}\" (HMAC) is never accepted: it needs a shared secret, not the provider's \
             public keys; use one of {ALGORITHM_NAMES}"
        )),
        "ES256K" | "ES256KADR36" => Err(format!(
            "\"{name}\" is for Akash tokens (auth.akash), not OIDC; use one of {ALGORITHM_NAMES}"
        )),
        _ => name
            .parse::<Algorithm>()
            .ok()
            .filter(|a| DEFAULT_ALGORITHMS.contains(a))
            .ok_or_else(|| {
                format!("\"{name}\" is not a supported algorithm; use one of {ALGORITHM_NAMES}")
            }),
    }
}

fn max_token_bytes(value: Option<String>, report: &mut Report<'_>) -> Result<usize, Reported> {
    const KEY: &str = "auth.jwt.maxTokenBytes";
    let Some(text) = non_empty(value) else {
        return Ok(DEFAULT_MAX_TOKEN_BYTES);
    };
    match text.parse::<usize>() {
        Ok(n) if (MIN_MAX_TOKEN_BYTES..=MAX_MAX_TOKEN_BYTES).contains(&n) => Ok(n),
        _ => Err(report.error(
            KEY,
            format!(
                "\"{text}\" is not a byte count from {MIN_MAX_TOKEN_BYTES} to \
                 {MAX_MAX_TOKEN_BYTES} (the API's header limit); default {DEFAULT_MAX_TOKEN_BYTES}"
            ),
        )),
    }
}

fn as_algorithms<S: Serializer>(value: &[Algorithm], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(value.iter().map(|a| format!("{a:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_are_asymmetric_only() {
        for name in ["RS256", "PS512", "ES256", "ES384", "EdDSA"] {
            assert!(parse_algorithm(name).is_ok(), "{name}");
        }
        for name in [
            "none",
            "HS256",
            "HS512",
            "ES256K",
            "ES256KADR36",
            "ES512",
            "rs256",
            "",
        ] {
            assert!(parse_algorithm(name).is_err(), "{name}");
        }
        let names: Vec<String> = DEFAULT_ALGORITHMS
            .iter()
            .map(|a| format!("{a:?}"))
            .collect();
        assert_eq!(names.join(", "), ALGORITHM_NAMES);
    }

    #[test]
    fn issuer_urls() {
        for ok in [
            "https://login.example.com",
            "https://login.microsoftonline.com/tenant/v2.0",
            "https://tenant.auth0.com/",
            "http://127.0.0.1:8080",
            "http://localhost:9000/realms/x",
            "http://[::1]:9000",
        ] {
            assert!(check_issuer_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "http://10.0.0.1",
            "ftp://x",
            "login.example.com",
            "https://idp.example.com/?tenant=a",
            "https://user@idp.example.com",
        ] {
            assert!(check_issuer_url(bad).is_err(), "{bad}");
        }
    }

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<super::super::Loaded, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        super::super::Config::from_yaml(yaml, env).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_section_loads_with_defaults() {
        let loaded = load(
            "auth:\n  jwt:\n    issuerUrl: https://idp.example.com/\n    audience: https://certfleet.example.com\n",
            &[],
        )
        .expect("valid");
        let jwt = loaded.config.auth.jwt.expect("auth.jwt");
        assert_eq!(jwt.issuer_url, "https://idp.example.com/");
        assert_eq!(jwt.audiences, ["https://certfleet.example.com"]);
        assert_eq!(jwt.leeway, DEFAULT_LEEWAY);
        assert_eq!(jwt.algorithms, DEFAULT_ALGORITHMS);
        assert_eq!(jwt.max_token_bytes, DEFAULT_MAX_TOKEN_BYTES);
        assert!(jwt.required_scopes.is_empty() && jwt.domains_claim.is_none());
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("auth.jwt has no domainsClaim")),
            "{:?}",
            loaded.warnings
        );
        assert!(!loaded.warnings.iter().any(|w| w.contains("no auth method")));
        let loaded = load(
            "auth:\n  jwt:\n    issuerUrl: https://idp.example.com\n    audience: x\n",
            &[("CERTFLEET_AUTH__JWT__AUDIENCE", "https://env.example.com")],
        )
        .expect("valid");
        let jwt = loaded.config.auth.jwt.expect("auth.jwt");
        assert_eq!(jwt.audiences, ["https://env.example.com"]);

        let loaded = load(
            "auth:\n  jwt:\n    issuerUrl: http://127.0.0.1:9000\n    audience: [a, b]\n    requiredScopes: [certificates:request]\n    domainsClaim: https://certfleet.example.com/domains\n    rolesClaim: roles\n    leeway: 30s\n    algorithms: [ES256, EdDSA]\n    maxTokenBytes: 4096\n",
            &[("CERTFLEET_AUTH__JWT__AUDIENCE__1", "c")],
        )
        .expect("valid");
        let jwt = loaded.config.auth.jwt.clone().expect("auth.jwt");
        assert_eq!(jwt.audiences, ["a", "c"]);
        assert_eq!(jwt.required_scopes, ["certificates:request"]);
        assert_eq!(
            jwt.domains_claim.as_deref(),
            Some("https://certfleet.example.com/domains")
        );
        assert_eq!(jwt.roles_claim.as_deref(), Some("roles"));
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        assert_eq!(jwt.algorithms, [Algorithm::ES256, Algorithm::EdDSA]);
        assert_eq!(jwt.max_token_bytes, 4096);
        assert!(!loaded.warnings.iter().any(|w| w.contains("domainsClaim")));
        let yaml = loaded.config.to_redacted_yaml();
        assert!(
            yaml.contains("algorithms:") && yaml.contains("ES256"),
            "{yaml}"
        );
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let err = load(
            "auth:\n  jwt:\n    issuerUrl: http://idp.example.com\n    algorithms: [none, HS256, RS256]\n    leeway: 1h\n    maxTokenBytes: 100000\n    caCertificates: /nonexistent/ca.pem\n    requiredScopes: [\"a b\"]\n",
            &[],
        )
        .expect_err("invalid");
        for key in [
            "auth.jwt.issuerUrl: \"http://idp.example.com\" uses http://",
            "auth.jwt.audience: is required",
            "auth.jwt.algorithms[0]: \"none\"",
            "auth.jwt.algorithms[1]: \"HS256\" (HMAC) is never accepted",
            "auth.jwt.leeway:",
            "auth.jwt.maxTokenBytes:",
            "auth.jwt.caCertificates: cannot read /nonexistent/ca.pem",
            "auth.jwt.requiredScopes[0]:",
        ] {
            assert!(err.contains(key), "{key} in {err}");
        }
        let err = load("auth:\n  jwt:\n    audience: x\n", &[]).expect_err("invalid");
        assert!(err.contains("auth.jwt.issuerUrl: is required"), "{err}");
        let err = load(
            "auth:\n  jwt:\n    issuerUrl: https://x\n    audience: x\n    scopes: [a]\n",
            &[],
        )
        .expect_err("unknown key");
        assert!(err.contains("auth.jwt.scopes: unknown key"), "{err}");
    }
}
