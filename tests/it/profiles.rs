//! ACME profiles per certificate against Pebble 2.10: each profile's lifetime, renewals that keep
//! the profile, and the refusals that come before any order (a profile the CA does not list, one
//! the credential may not name).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::common;
use common::service::{ADMIN_KEY, Service, json};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";
/// A key that may name no profile but the default.
const DEFAULT_ONLY_KEY: &str = "default-only-key-0123456789abcdef0123456789";
/// A key that may name `shortlived`.
const SHORT_KEY: &str = "short-key-0123456789abcdef0123456789abcdef";

const NINETY_DAYS: u64 = 7_776_000;
const SIX_DAYS: u64 = 518_400;
/// A profile short enough for the worker to renew during the test.
const BRIEF: u64 = 30;

async fn pebble() -> Pebble {
    Pebble::start(PebbleOptions {
        v2_10: true,
        profiles: vec![
            ("default".to_owned(), NINETY_DAYS),
            ("shortlived".to_owned(), SIX_DAYS),
            ("brief".to_owned(), BRIEF),
        ],
        ..PebbleOptions::default()
    })
    .await
}

/// certfleet with `acme.profile: default` (Pebble picks a profile at random for an order that
/// names none) and two more keys: one limited to the default profile, one to `shortlived`.
async fn service(pebble: &Pebble) -> Service {
    Service::start_with(pebble, "30s", |yaml| {
        let anchor = "        domains: [\"*.a.example.test\", \"a.example.test\"]\n";
        let email = "  email: \"ops@example.test\"\n";
        assert!(
            yaml.contains(anchor) && yaml.contains(email),
            "the base config changed:\n{yaml}"
        );
        yaml.replace(email, &format!("{email}  profile: default\n"))
            .replace(
            anchor,
            &format!(
                "{anchor}      - name: default-only\n        key: \"{DEFAULT_ONLY_KEY}\"\n        \
                 profiles: []\n      - name: short\n        key: \"{SHORT_KEY}\"\n        \
                 profiles: [shortlived]\n"
            ),
        )
    })
    .await
}

/// The leaf's serial (hex) and lifetime in seconds (notAfter - notBefore, inclusive as RFC 5280
/// counts it: Pebble's notAfter is notBefore + period - 1 s).
fn leaf(body: &Value) -> (String, u64) {
    let der = common::leaf_der(body);
    let (_, cert) = X509Certificate::from_der(&der).expect("parse the leaf");
    let validity = cert.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp() + 1;
    (
        common::serial_hex(&cert),
        u64::try_from(lifetime).expect("a positive lifetime"),
    )
}

async fn ok(service: &Service, key: &str, body: Value) -> Value {
    let response = service.post(CERT, key, body.clone()).await;
    let status = response.status();
    let answer = json(response).await;
    assert_eq!(status, 200, "{body}: {answer}");
    answer
}

#[tokio::test]
async fn each_profile_gets_its_lifetime_and_renewals_keep_it() {
    let pebble = pebble().await;
    let service = service(&pebble).await;
    let name = "p.example.test";

    let default = ok(&service, ADMIN_KEY, json!({"domain": name})).await;
    let (default_serial, lifetime) = leaf(&default);
    assert_eq!(lifetime, NINETY_DAYS, "no profile: acme.profile");
    // Naming acme.profile's own profile is the same certificate.
    let named = ok(
        &service,
        ADMIN_KEY,
        json!({"domain": name, "profile": "default"}),
    )
    .await;
    assert_eq!(named["cached"], true);
    assert_eq!(leaf(&named).0, default_serial);

    let short = ok(
        &service,
        ADMIN_KEY,
        json!({"domain": name, "profile": "shortlived"}),
    )
    .await;
    let (short_serial, lifetime) = leaf(&short);
    assert_eq!(lifetime, SIX_DAYS, "shortlived: six days");
    assert_ne!(
        short_serial, default_serial,
        "another identity, another order"
    );
    assert_eq!(short["cached"], false);
    assert_eq!(pebble.orders_count(), 2);

    // The profile is part of the identity: asked again, the stored one; read by GET.
    let again = ok(
        &service,
        ADMIN_KEY,
        json!({"domains": [name], "profile": "shortlived"}),
    )
    .await;
    assert_eq!(again["cached"], true);
    assert_eq!(leaf(&again).0, short_serial);
    let got = service
        .get(
            &format!("{CERT}?domain={name}&profile=shortlived"),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(got.status(), 200);
    assert_eq!(leaf(&json(got).await).0, short_serial);
    let plain = service
        .get(&format!("{CERT}?domain={name}"), ADMIN_KEY)
        .await;
    assert_eq!(leaf(&json(plain).await).0, default_serial);
    assert_eq!(pebble.orders_count(), 2, "no order for what is stored");

    // The inventory tells the two apart.
    let list = json(service.get("/api/certificates", ADMIN_KEY).await).await;
    let mut profiles: Vec<Value> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .filter(|item| item["names"] == json!([name]))
        .map(|item| item["profile"].clone())
        .collect();
    profiles.sort_by_key(Value::to_string);
    assert_eq!(profiles, [json!("shortlived"), json!(null)], "{list}");

    // A 30-second profile: the worker renews it with the same profile (the default would give
    // 90 days), and the renewed certificate is the same identity.
    let brief_name = "b.example.test";
    let brief = ok(
        &service,
        ADMIN_KEY,
        json!({"domain": brief_name, "profile": "brief"}),
    )
    .await;
    let (brief_serial, lifetime) = leaf(&brief);
    assert_eq!(lifetime, BRIEF);
    let deadline = Instant::now() + Duration::from_secs(45);
    let renewed = loop {
        let response = service
            .get(
                &format!("{CERT}?domain={brief_name}&profile=brief"),
                ADMIN_KEY,
            )
            .await;
        assert_eq!(response.status(), 200);
        let body = json(response).await;
        if leaf(&body).0 != brief_serial {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the brief certificate was not renewed in time\n{}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(leaf(&renewed).1, BRIEF, "the renewal kept the profile");
    let missing = service
        .get(&format!("{CERT}?domain={brief_name}"), ADMIN_KEY)
        .await;
    assert_eq!(
        missing.status(),
        404,
        "no default-profile certificate appeared"
    );
}

#[tokio::test]
async fn unknown_profiles_and_profiles_a_credential_may_not_name_are_refused_before_ordering() {
    let pebble = pebble().await;
    let service = service(&pebble).await;
    let name = "q.example.test";

    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": name, "profile": "tlsserver"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["code"], "unknown_profile", "{body}");
    let message = body["message"].as_str().expect("message");
    for offered in ["default", "shortlived", "brief", "\"tlsserver\""] {
        assert!(message.contains(offered), "{offered} not in {message}");
    }

    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": name, "profile": "two words"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["code"], "invalid_body", "{body}");

    for (key, profile, code) in [
        (DEFAULT_ONLY_KEY, "shortlived", "profile_not_allowed"),
        (SHORT_KEY, "brief", "profile_not_allowed"),
    ] {
        let response = service
            .post(CERT, key, json!({"domain": name, "profile": profile}))
            .await;
        assert_eq!(response.status(), 403, "{profile}");
        let body = json(response).await;
        assert_eq!(body["code"], code, "{body}");
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(profile), "{message}");
    }
    // GET is judged the same way: no reading another profile's certificate either.
    let response = service
        .get(
            &format!("{CERT}?domain={name}&profile=shortlived"),
            DEFAULT_ONLY_KEY,
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        pebble.orders_count(),
        0,
        "nothing was ordered for a refusal"
    );

    // What each key may have, it gets.
    let plain = ok(&service, DEFAULT_ONLY_KEY, json!({"domain": name})).await;
    assert_eq!(leaf(&plain).1, NINETY_DAYS);
    let short = ok(
        &service,
        SHORT_KEY,
        json!({"domain": name, "profile": "shortlived"}),
    )
    .await;
    assert_eq!(leaf(&short).1, SIX_DAYS);
    assert_eq!(pebble.orders_count(), 2);
}
