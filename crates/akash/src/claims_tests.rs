//! A table test for every claim rule, accepted and refused, and for the time rules.

use serde_json::json;

use super::*;

const ISS: &str = "akash1zyfpx9q4zct3sxg6rvwp68slyqsjygey0quqf3";
const PROVIDER: &str = "akash1yg3jgffxyu5zj23t9skjutesxyerxdp46ed34h";
const OTHER_PROVIDER: &str = "akash1xv6r2d3h8qun5weu85lr7szpgfp5g32xdyet26";

fn addresses_are_valid() {
    for a in [ISS, PROVIDER, OTHER_PROVIDER] {
        Address::parse(a).unwrap_or_else(|e| panic!("{a}: {e}"));
    }
}

fn base() -> Value {
    json!({
        "iss": ISS, "iat": 1000, "nbf": 1000, "exp": 1900, "version": "v1",
        "leases": {"access": "full"}
    })
}

fn granular() -> Value {
    json!({
        "access": "granular",
        "permissions": [
            {"provider": PROVIDER, "access": "full"},
            {"provider": OTHER_PROVIDER, "access": "granular", "deployments": [
                {"dseq": 42, "gseq": 1, "oseq": 1, "scope": ["logs"], "services": ["web"]}
            ]}
        ]
    })
}

/// `base()` with the value at `pointer` replaced (`Some`) or removed (`None`).
fn edit(mut claims: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let target = claims.pointer_mut(parent).expect("the parent exists");
    match (target, value) {
        (Value::Object(map), Some(value)) => {
            map.insert(key.to_owned(), value);
        }
        (Value::Object(map), None) => {
            map.remove(key);
        }
        (Value::Array(items), Some(value)) => {
            items[key.parse::<usize>().expect("an index")] = value;
        }
        (Value::Array(items), None) => {
            items.remove(key.parse::<usize>().expect("an index"));
        }
        _ => panic!("{pointer} is not in a container"),
    }
    claims
}

fn parse(claims: &Value) -> Result<Claims, ClaimsError> {
    let Value::Object(map) = claims else {
        panic!("claims are an object")
    };
    Claims::parse(map)
}

#[test]
fn every_claim_rule() {
    addresses_are_valid();
    let g = || edit(base(), "/leases", Some(granular()));
    let dep = "/leases/permissions/1/deployments/0";
    // (claims, None when accepted or a part of the refusal's message)
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("full", base(), None),
        (
            "unknown claims are ignored",
            edit(base(), "/aud", Some(json!("x"))),
            None,
        ),
        ("jti", edit(base(), "/jti", Some(json!("id-1"))), None),
        (
            "empty jti",
            edit(base(), "/jti", Some(json!(""))),
            Some("jti"),
        ),
        (
            "number jti",
            edit(base(), "/jti", Some(json!(7))),
            Some("jti"),
        ),
        ("no iss", edit(base(), "/iss", None), Some("iss is missing")),
        (
            "number iss",
            edit(base(), "/iss", Some(json!(1))),
            Some("iss is not a string"),
        ),
        (
            "uppercase iss",
            edit(base(), "/iss", Some(json!(ISS.to_uppercase()))),
            Some("lowercase"),
        ),
        (
            "cosmos iss",
            edit(
                base(),
                "/iss",
                Some(json!("cosmos1zyfpx9q4zct3sxg6rvwp68slyqsjygeyzm38st")),
            ),
            Some("iss"),
        ),
        (
            "bad checksum iss",
            edit(base(), "/iss", Some(json!(&ISS[..ISS.len() - 1]))),
            Some("bech32"),
        ),
        ("no iat", edit(base(), "/iat", None), Some("iat is missing")),
        ("no nbf", edit(base(), "/nbf", None), Some("nbf is missing")),
        ("no exp", edit(base(), "/exp", None), Some("exp is missing")),
        (
            "fractional exp",
            edit(base(), "/exp", Some(json!(1900.5))),
            Some("exp is not a whole"),
        ),
        (
            "string exp",
            edit(base(), "/exp", Some(json!("1900"))),
            Some("exp is not a whole"),
        ),
        (
            "negative iat",
            edit(base(), "/iat", Some(json!(-1))),
            Some("iat is not a whole"),
        ),
        (
            "no version",
            edit(base(), "/version", None),
            Some("version is missing"),
        ),
        (
            "version v2",
            edit(base(), "/version", Some(json!("v2"))),
            Some("version is not"),
        ),
        (
            "version 1",
            edit(base(), "/version", Some(json!(1))),
            Some("version is not"),
        ),
        (
            "no leases",
            edit(base(), "/leases", None),
            Some("leases is missing"),
        ),
        (
            "leases list",
            edit(base(), "/leases", Some(json!([]))),
            Some("leases is not an object"),
        ),
        (
            "no access",
            edit(base(), "/leases/access", None),
            Some("leases.access is missing"),
        ),
        (
            "access none",
            edit(base(), "/leases/access", Some(json!("none"))),
            Some("not full, scoped or granular"),
        ),
        (
            "access number",
            edit(base(), "/leases/access", Some(json!(1))),
            Some("leases.access is not a string"),
        ),
        // full
        (
            "full with empty permissions",
            edit(base(), "/leases/permissions", Some(json!([]))),
            Some("leases.permissions is not allowed with access full"),
        ),
        (
            "full with null permissions",
            edit(base(), "/leases/permissions", Some(Value::Null)),
            Some("leases.permissions is not allowed"),
        ),
        (
            "full with scope",
            edit(base(), "/leases/scope", Some(json!(["logs"]))),
            Some("leases.scope is not allowed with access full"),
        ),
        // scoped
        (
            "scoped",
            edit(
                base(),
                "/leases",
                Some(
                    json!({"access": "scoped", "scope": ["send-manifest", "logs", "attestation"]}),
                ),
            ),
            None,
        ),
        (
            "every scope",
            edit(
                base(),
                "/leases",
                Some(
                    json!({"access": "scoped", "scope": ["send-manifest", "get-manifest", "logs", "shell", "events", "status", "restart", "hostname-migrate", "ip-migrate", "attestation"]}),
                ),
            ),
            None,
        ),
        (
            "scoped without scope",
            edit(base(), "/leases", Some(json!({"access": "scoped"}))),
            Some("leases.scope is missing"),
        ),
        (
            "scoped with empty scope",
            edit(
                base(),
                "/leases",
                Some(json!({"access": "scoped", "scope": []})),
            ),
            Some("leases.scope is empty"),
        ),
        (
            "scoped with empty permissions",
            edit(
                base(),
                "/leases",
                Some(json!({"access": "scoped", "scope": ["logs"], "permissions": []})),
            ),
            Some("leases.permissions is not allowed with access scoped"),
        ),
        (
            "unknown scope",
            edit(
                base(),
                "/leases",
                Some(json!({"access": "scoped", "scope": ["logs", "deploy"]})),
            ),
            Some("leases.scope[1] \"deploy\" is not a scope"),
        ),
        (
            "scope with underscore",
            edit(
                base(),
                "/leases",
                Some(json!({"access": "scoped", "scope": ["send_manifest"]})),
            ),
            Some("is not a scope"),
        ),
        (
            "duplicate scope",
            edit(
                base(),
                "/leases",
                Some(json!({"access": "scoped", "scope": ["logs", "shell", "logs"]})),
            ),
            Some("leases.scope[2] \"logs\" is listed twice"),
        ),
        (
            "scope not a list",
            edit(
                base(),
                "/leases",
                Some(json!({"access": "scoped", "scope": "logs"})),
            ),
            Some("leases.scope is not a list"),
        ),
        (
            "scope item not a string",
            edit(
                base(),
                "/leases",
                Some(json!({"access": "scoped", "scope": [1]})),
            ),
            Some("leases.scope[0] is not a string"),
        ),
        // granular
        ("granular", g(), None),
        (
            "granular without permissions",
            edit(g(), "/leases/permissions", None),
            Some("leases.permissions is missing"),
        ),
        (
            "granular with empty permissions",
            edit(g(), "/leases/permissions", Some(json!([]))),
            Some("leases.permissions is empty"),
        ),
        (
            "granular with a scope",
            edit(g(), "/leases/scope", Some(json!(["logs"]))),
            Some("leases.scope is not allowed with access granular"),
        ),
        (
            "duplicate provider",
            edit(g(), "/leases/permissions/1/provider", Some(json!(PROVIDER))),
            Some("leases.permissions[1].provider: akash1yg3j"),
        ),
        (
            "no provider",
            edit(g(), "/leases/permissions/0/provider", None),
            Some("leases.permissions[0].provider is missing"),
        ),
        (
            "bad provider",
            edit(
                g(),
                "/leases/permissions/0/provider",
                Some(json!("akash1xyz")),
            ),
            Some("leases.permissions[0].provider: \"akash1xyz\" is not an Akash address"),
        ),
        (
            "permission not an object",
            edit(g(), "/leases/permissions/0", Some(json!("x"))),
            Some("leases.permissions[0] is not an object"),
        ),
        (
            "permission without access",
            edit(g(), "/leases/permissions/0/access", None),
            Some("leases.permissions[0].access is missing"),
        ),
        (
            "permission full with scope",
            edit(g(), "/leases/permissions/0/scope", Some(json!(["logs"]))),
            Some("leases.permissions[0].scope is not allowed with access full"),
        ),
        (
            "permission full with deployments",
            edit(g(), "/leases/permissions/0/deployments", Some(json!([]))),
            Some("leases.permissions[0].deployments is not allowed with access full"),
        ),
        (
            "permission scoped",
            edit(
                g(),
                "/leases/permissions/0",
                Some(json!({"provider": PROVIDER, "access": "scoped", "scope": ["status"]})),
            ),
            None,
        ),
        (
            "permission scoped without scope",
            edit(
                g(),
                "/leases/permissions/0",
                Some(json!({"provider": PROVIDER, "access": "scoped"})),
            ),
            Some("leases.permissions[0].scope is missing"),
        ),
        (
            "permission scoped with empty scope",
            edit(
                g(),
                "/leases/permissions/0",
                Some(json!({"provider": PROVIDER, "access": "scoped", "scope": []})),
            ),
            Some("leases.permissions[0].scope is empty"),
        ),
        (
            "permission scoped with deployments",
            edit(
                g(),
                "/leases/permissions/0",
                Some(
                    json!({"provider": PROVIDER, "access": "scoped", "scope": ["logs"], "deployments": []}),
                ),
            ),
            Some("leases.permissions[0].deployments is not allowed with access scoped"),
        ),
        (
            "permission granular with scope",
            edit(g(), "/leases/permissions/1/scope", Some(json!(["logs"]))),
            Some("leases.permissions[1].scope is not allowed with access granular"),
        ),
        (
            "permission granular without deployments",
            edit(g(), "/leases/permissions/1/deployments", None),
            Some("leases.permissions[1].deployments is missing"),
        ),
        (
            "permission granular with empty deployments",
            edit(g(), "/leases/permissions/1/deployments", Some(json!([]))),
            Some("leases.permissions[1].deployments is empty"),
        ),
        // deployments
        (
            "deployment without scope",
            edit(g(), &format!("{dep}/scope"), None),
            Some("deployments[0].scope is missing"),
        ),
        (
            "deployment with empty scope",
            edit(g(), &format!("{dep}/scope"), Some(json!([]))),
            Some("deployments[0].scope is empty"),
        ),
        (
            "deployment without dseq",
            edit(g(), &format!("{dep}/dseq"), None),
            Some("deployments[0].dseq is missing"),
        ),
        (
            "dseq 0",
            edit(g(), &format!("{dep}/dseq"), Some(json!(0))),
            Some("dseq is not a whole number above 0"),
        ),
        (
            "dseq as a string",
            edit(g(), &format!("{dep}/dseq"), Some(json!("42"))),
            Some("dseq is not a whole number above 0"),
        ),
        (
            "oseq without gseq",
            edit(g(), &format!("{dep}/gseq"), None),
            Some("oseq is set without gseq"),
        ),
        (
            "oseq 0 without gseq (present is set)",
            edit(
                edit(g(), &format!("{dep}/gseq"), None),
                &format!("{dep}/oseq"),
                Some(json!(0)),
            ),
            Some("oseq is set without gseq"),
        ),
        (
            "oseq with gseq 0",
            edit(g(), &format!("{dep}/gseq"), Some(json!(0))),
            Some("gseq is 0"),
        ),
        ("gseq alone", edit(g(), &format!("{dep}/oseq"), None), None),
        (
            "neither gseq nor oseq",
            edit(
                edit(g(), &format!("{dep}/oseq"), None),
                &format!("{dep}/gseq"),
                None,
            ),
            None,
        ),
        (
            "gseq and oseq 0",
            edit(
                edit(g(), &format!("{dep}/oseq"), Some(json!(0))),
                &format!("{dep}/gseq"),
                Some(json!(0)),
            ),
            None,
        ),
        (
            "gseq too large",
            edit(g(), &format!("{dep}/gseq"), Some(json!(4_294_967_296_u64))),
            Some("gseq is not a whole number"),
        ),
        (
            "deployment without services",
            edit(g(), &format!("{dep}/services"), None),
            Some("deployments[0].services is missing"),
        ),
        (
            "deployment with empty services",
            edit(g(), &format!("{dep}/services"), Some(json!([]))),
            Some("deployments[0].services is empty"),
        ),
        (
            "duplicate service",
            edit(
                g(),
                &format!("{dep}/services"),
                Some(json!(["web", "db", "web"])),
            ),
            Some("services[2]: \"web\" is listed twice"),
        ),
        (
            "empty service name",
            edit(g(), &format!("{dep}/services"), Some(json!([""]))),
            Some("services[0] is not a non-empty string"),
        ),
        (
            "deployment not an object",
            edit(g(), dep, Some(json!(42))),
            Some("deployments[0] is not an object"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, claims, expected) in &cases {
        match (parse(claims), expected) {
            (Ok(_), None) => {}
            (Err(e), Some(part)) if e.to_string().contains(part) => {}
            (got, _) => failures.push(format!("{name}: expected {expected:?}, got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parsed_claims_keep_what_the_token_says() {
    let claims = parse(&edit(base(), "/leases", Some(granular()))).expect("valid");
    assert_eq!(claims.issuer.as_str(), ISS);
    assert_eq!(
        (claims.issued_at, claims.not_before, claims.expires_at),
        (1000, 1000, 1900)
    );
    let Leases::Granular(permissions) = &claims.leases else {
        panic!("granular")
    };
    assert_eq!(permissions[0].access, ProviderAccess::Full);
    let ProviderAccess::Granular(deployments) = &permissions[1].access else {
        panic!("granular deployments")
    };
    assert_eq!(
        (
            deployments[0].dseq,
            deployments[0].gseq,
            deployments[0].oseq
        ),
        (42, 1, 1)
    );
    assert!(deployments[0].scope.contains(Scope::Logs));
    assert!(!deployments[0].scope.contains(Scope::Shell));
    assert_eq!(deployments[0].services, ["web"]);
    assert!(claims.names_provider(&Address::parse(PROVIDER).expect("address")));
    assert!(!claims.names_provider(&Address::parse(ISS).expect("address")));
    let full = parse(&base()).expect("valid");
    assert!(!full.names_provider(&Address::parse(PROVIDER).expect("address")));
}

#[test]
fn time_rules() {
    let claims = |iat: i64, nbf: i64, exp: i64| {
        let mut c = parse(&base()).expect("valid");
        (c.issued_at, c.not_before, c.expires_at) = (iat, nbf, exp);
        c
    };
    let strict = Validity {
        leeway: Duration::ZERO,
        max_lifetime: None,
    };
    let usual = Validity {
        leeway: Duration::from_secs(30),
        max_lifetime: Some(Duration::from_secs(900)),
    };
    // (rules, iat, nbf, exp, now, None when accepted or part of the refusal)
    type Case = (Validity, i64, i64, i64, i64, Option<&'static str>);
    let cases: &[Case] = &[
        (strict, 1000, 1000, 1900, 1000, None),
        (strict, 1000, 1000, 1900, 1899, None),
        (strict, 1000, 1000, 1900, 1900, Some("expired 0s ago")),
        (
            strict,
            1000,
            1000,
            1900,
            999,
            Some("not valid yet: nbf is 1s"),
        ),
        (strict, 1000, 1000, 4600, 2000, None), // the reference has no maximum lifetime
        (usual, 1000, 1000, 1900, 1929, None),
        (usual, 1000, 1000, 1900, 1930, Some("expired 30s ago")),
        (usual, 1000, 1000, 1900, 970, None),
        (usual, 1000, 1000, 1900, 969, Some("not valid yet")),
        (usual, 1000, 1000, 1901, 1000, Some("valid for 15m1s")),
        (
            usual,
            1000,
            1000,
            4600,
            1000,
            Some("1 hour unless exp is given"),
        ),
        (
            usual,
            1000,
            1000,
            1000,
            1000,
            Some("exp (1000) is not after its nbf (1000)"),
        ),
        (usual, 1000, 1000, 900, 950, Some("never valid")),
        (
            usual,
            1100,
            1000,
            1900,
            1000,
            Some("iat is 100s in the future"),
        ),
        (usual, 1030, 1000, 1900, 1000, None),
    ];
    for (rules, iat, nbf, exp, now, expected) in cases {
        let got = rules.check(&claims(*iat, *nbf, *exp), *now);
        match (&got, expected) {
            (Ok(()), None) => {}
            (Err(e), Some(part)) if e.to_string().contains(part) => {}
            _ => panic!(
                "iat {iat} nbf {nbf} exp {exp} now {now} {rules:?}: {got:?}, expected {expected:?}"
            ),
        }
    }
}

#[test]
fn scope_names_round_trip() {
    for (scope, name) in SCOPES {
        assert_eq!(Scope::from_name(name), Some(scope));
        assert_eq!(scope.name(), name);
    }
    assert_eq!(Scope::from_name("Logs"), None);
}

#[test]
fn whole_messages_name_the_path_and_the_rule() {
    let g = || edit(base(), "/leases", Some(granular()));
    let dep = "/leases/permissions/1/deployments/0";
    let message = |claims: &Value| parse(claims).expect_err("refused").to_string();
    assert_eq!(
        message(&edit(
            g(),
            "/leases/permissions/1/provider",
            Some(json!(PROVIDER))
        )),
        format!(
            "leases.permissions[1].provider: {PROVIDER} is listed twice; give each provider one \
             entry"
        )
    );
    assert_eq!(
        message(&edit(g(), &format!("{dep}/scope/0"), Some(json!("tail")))),
        "leases.permissions[1].deployments[0].scope[0] \"tail\" is not a scope (one of \
         send-manifest, get-manifest, logs, shell, events, status, restart, hostname-migrate, \
         ip-migrate, attestation)"
    );
    assert_eq!(
        message(&edit(g(), &format!("{dep}/gseq"), Some(json!(0)))),
        "leases.permissions[1].deployments[0].oseq is 1 but gseq is 0 (any group); an order \
         needs its group"
    );
    let bech32_error =
        bech32::primitives::decode::CheckedHrpstring::new::<bech32::Bech32>("akash1")
            .expect_err("no data, no checksum");
    assert_eq!(
        message(&edit(base(), "/iss", Some(json!("akash1")))),
        format!("iss: \"akash1\" is not an Akash address: not valid bech32 ({bech32_error})")
    );
    let usual = Validity {
        leeway: Duration::from_secs(30),
        max_lifetime: Some(Duration::from_secs(900)),
    };
    let mut long = parse(&base()).expect("valid");
    long.expires_at = long.not_before + 3600;
    assert_eq!(
        usual.check(&long, 1000).expect_err("too long").to_string(),
        "the token is valid for 1h (exp - nbf), longer than the 15m allowed; the Akash SDK's \
         JwtTokenManager.generateToken makes tokens valid for 1 hour unless exp is given: pass \
         exp: Math.floor(Date.now() / 1000) + 900 (15 minutes), or mint one with `certfleet \
         akash token --lifetime 15m`"
    );
}
