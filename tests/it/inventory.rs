//! The operator's inventory on a real Pebble: `GET /api/certificates` pages and filters, and
//! `GET /api/certificates/{id}` with the issuance history and who received which serial; what
//! an admin credential sees and what a fleet credential sees.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";
const LIST: &str = "/api/certificates";
const FAILING: &str = "unreachable.inventory.example.test";
const ISSUED: [&str; 3] = [
    "inv.a.example.test",
    "inv-2.inventory.example.test",
    "inv-3.inventory.example.test",
];

fn cert_key(name: &str) -> certfleet::domain::CertKey {
    certfleet::domain::CertKey {
        names: certfleet::domain::NameSet::parse(&[name]).expect("a name"),
        key: certfleet::domain::KeySpec::Server(certfleet::domain::KeyType::EcdsaP256),
        profile: None,
    }
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

async fn list(service: &Service, key: &str, query: &str) -> Value {
    let response = service.get(&format!("{LIST}?{query}"), key).await;
    assert_eq!(response.status(), 200, "{LIST}?{query}");
    json(response).await
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["names"][0].as_str().expect("a name").to_owned())
        .collect()
}

#[tokio::test]
async fn the_inventory_lists_pages_filters_and_tells_the_history() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    // Pebble's validator dials 127.0.0.2 for this name, where nothing listens.
    pebble.add_a(FAILING, "127.0.0.2").await;
    let service = Service::start(&pebble).await;

    let mut serials = Vec::new();
    for name in ISSUED {
        let response = service.post(CERT, ADMIN_KEY, json!({"domain": name})).await;
        assert_eq!(response.status(), 200, "{name}");
        let _ = json(response).await;
        let entry = service
            .app
            .api
            .store
            .inventory_entry(&cert_key(name))
            .await
            .expect("read")
            .expect("stored");
        serials.push(entry.cert.expect("a certificate").serial);
    }
    let failed = service
        .post(CERT, ADMIN_KEY, json!({"domain": FAILING}))
        .await;
    assert_eq!(failed.status(), 502);
    assert_eq!(json(failed).await["code"], "validation_failed");
    // The fleet credential fetches its certificate twice: one delivery row.
    for _ in 0..2 {
        let response = service
            .get(&format!("{CERT}?domain={}", ISSUED[0]), FLEET_A_KEY)
            .await;
        assert_eq!(response.status(), 200);
    }

    // The whole inventory: the failing identity first, then the three by expiry.
    let all = list(&service, ADMIN_KEY, "").await;
    assert_eq!(all["next"], Value::Null);
    let items = all["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{all:#}");
    let failing = &items[0];
    assert_eq!(failing["names"], json!([FAILING]));
    assert_eq!(failing["status"], "backing_off");
    assert_eq!(failing["serial"], Value::Null);
    assert_eq!(failing["lastError"]["code"], "validation_failed");
    assert_eq!(failing["lastError"]["count"], 1);
    assert!(
        failing["lastError"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(FAILING)),
        "{failing:#}"
    );
    assert!(failing["lastError"]["at"].is_string(), "{failing:#}");
    assert!(failing["nextAttempt"].is_string(), "{failing:#}");
    let issued: BTreeSet<String> = items[1..]
        .iter()
        .map(|item| item["names"][0].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(issued, ISSUED.iter().map(ToString::to_string).collect());
    for item in &items[1..] {
        for field in [
            "id",
            "names",
            "keyType",
            "serial",
            "notBefore",
            "notAfter",
            "renewAfter",
            "status",
            "lastError",
        ] {
            assert!(item.get(field).is_some(), "{field} in {item:#}");
        }
        assert_eq!(item["status"], "valid");
        assert_eq!(item["keyType"], "ecdsa-p256");
        assert_eq!(item["lastError"], Value::Null);
        assert!(serials.iter().any(|s| item["serial"] == *s), "{item:#}");
    }
    let expiries: Vec<&str> = items[1..]
        .iter()
        .map(|item| item["notAfter"].as_str().expect("notAfter"))
        .collect();
    assert!(expiries.windows(2).all(|w| w[0] <= w[1]), "{expiries:?}");

    // One at a time, the cursor walks the same list and ends with null.
    let mut walked = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let page = list(&service, ADMIN_KEY, &query).await;
        assert!(page["items"].as_array().expect("items").len() <= 1);
        walked.extend(names(&page));
        match page["next"].as_str() {
            Some(next) => query = format!("limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(walked, names(&all));

    // Filters.
    assert_eq!(
        names(&list(&service, ADMIN_KEY, "status=backing_off").await),
        [FAILING]
    );
    assert_eq!(
        names(&list(&service, ADMIN_KEY, "status=valid").await).len(),
        3
    );
    assert!(names(&list(&service, ADMIN_KEY, "status=expired").await).is_empty());
    assert_eq!(
        names(&list(&service, ADMIN_KEY, "name=*.a.example.test").await),
        [ISSUED[0]]
    );
    assert_eq!(
        names(
            &list(
                &service,
                ADMIN_KEY,
                "name=*.inventory.example.test&status=valid"
            )
            .await
        ),
        ISSUED[1..].to_vec()
    );
    let bad = service
        .get(&format!("{LIST}?status=broken"), ADMIN_KEY)
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(json(bad).await["code"], "invalid_body");

    // A fleet credential sees only what its patterns allow.
    let fleet = list(&service, FLEET_A_KEY, "").await;
    assert_eq!(names(&fleet), [ISSUED[0]]);
    let id_of = |name: &str| {
        items
            .iter()
            .find(|item| item["names"][0] == name)
            .map(|item| item["id"].as_str().expect("id").to_owned())
            .expect("listed")
    };
    let hidden = service
        .get(&format!("{LIST}/{}", id_of(ISSUED[1])), FLEET_A_KEY)
        .await;
    assert_eq!(
        hidden.status(),
        404,
        "not the fleet's: as if it did not exist"
    );
    assert_eq!(json(hidden).await["code"], "not_found");
    let unknown = service.get(&format!("{LIST}/bm8"), ADMIN_KEY).await;
    assert_eq!(unknown.status(), 404);

    // One certificate: its history and who received it.
    let detail = service
        .get(&format!("{LIST}/{}", id_of(ISSUED[0])), FLEET_A_KEY)
        .await;
    assert_eq!(detail.status(), 200);
    let detail = json(detail).await;
    assert_eq!(detail["status"], "valid");
    let history = detail["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "{detail:#}");
    assert_eq!(history[0]["trigger"], "request");
    assert_eq!(history[0]["outcome"], "success");
    assert_eq!(history[0]["serial"], detail["serial"]);
    assert!(history[0]["durationMs"].as_i64().is_some_and(|ms| ms > 0));
    let deliveries = detail["deliveries"].as_array().expect("deliveries");
    let who: BTreeSet<&str> = deliveries
        .iter()
        .map(|d| d["principal"].as_str().expect("principal"))
        .collect();
    assert_eq!(
        who,
        BTreeSet::from(["psk:admin", "psk:fleet-a"]),
        "{detail:#}"
    );
    assert!(deliveries.iter().all(|d| d["serial"] == detail["serial"]));
    assert!(
        detail.get("privateKey").is_none() && !detail.to_string().contains("PRIVATE KEY"),
        "no key in the inventory"
    );

    let failing_detail = json(
        service
            .get(&format!("{LIST}/{}", id_of(FAILING)), ADMIN_KEY)
            .await,
    )
    .await;
    let history = failing_detail["history"].as_array().expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["outcome"], "failure");
    assert_eq!(history[0]["errorCode"], "validation_failed");
    assert_eq!(failing_detail["deliveries"], json!([]));

    // The operator's CLI against the same server: a table, then the same list as JSON.
    let (code, table) = certs(&service, ADMIN_KEY, &["list"]).await;
    assert_eq!(
        code,
        Some(3),
        "a failing certificate is listed: exit 3\n{table}"
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines.len(),
        6,
        "a header, four rows and the count:\n{table}"
    );
    assert!(
        lines[0].contains("STATUS") && lines[0].contains("EXPIRES"),
        "{table}"
    );
    assert!(lines[1].starts_with("!  backing_off"), "{table}");
    assert!(
        lines[1].contains(FAILING) && lines[1].contains("validation_failed"),
        "{table}"
    );
    for (line, name) in lines[2..5].iter().zip(walked[1..].iter()) {
        assert!(line.starts_with("   valid"), "{table}");
        assert!(line.contains(name.as_str()), "{name} in {table}");
        // Pebble's certificates last five years: "in 1825 days".
        let days = line
            .split("in ")
            .nth(1)
            .and_then(|rest| rest.split(" days").next())
            .and_then(|n| n.parse::<u32>().ok());
        assert!(days.is_some_and(|d| (1800..1830).contains(&d)), "{table}");
    }
    assert_eq!(lines[5], "4 certificates, 1 failing");
    let (code, listed) = certs(&service, ADMIN_KEY, &["--json", "list"]).await;
    assert_eq!(code, Some(3));
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(&listed, &all["items"], "the API's own items");
    let (code, fleet_table) = certs(&service, FLEET_A_KEY, &["list", "--status", "valid"]).await;
    assert_eq!(code, Some(0), "{fleet_table}");
    assert!(fleet_table.contains(ISSUED[0]) && fleet_table.ends_with("1 certificate, 0 failing\n"));
    let (code, shown) = certs(&service, FLEET_A_KEY, &["show", ISSUED[0]]).await;
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("status       valid"), "{shown}");
    assert!(
        shown.contains("request") && shown.contains("psk:fleet-a"),
        "{shown}"
    );
    let (code, refused) = certs(&service, FLEET_A_KEY, &["delete", ISSUED[0]]).await;
    assert_eq!(code, Some(1), "{refused}");
    assert!(refused.contains("admin_required"), "{refused}");

    // The admin's actions through the CLI.
    let (code, renewed) = certs(&service, ADMIN_KEY, &["renew", ISSUED[1]]).await;
    assert_eq!(code, Some(0), "{renewed}");
    assert!(
        renewed.starts_with(&format!("renewed {}: serial ", ISSUED[1])),
        "{renewed}"
    );
    assert!(!renewed.contains("PRIVATE KEY"));
    let (code, shown) = certs(&service, ADMIN_KEY, &["--json", "show", ISSUED[1]]).await;
    assert_eq!(code, Some(0), "{shown}");
    let shown: Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["history"][0]["trigger"], "forced");
    let (code, revoked) = certs(
        &service,
        ADMIN_KEY,
        &["revoke", ISSUED[2], "--reason", "superseded"],
    )
    .await;
    assert_eq!(code, Some(0), "{revoked}");
    assert!(
        revoked.contains("(superseded)") && revoked.contains("replacement issued"),
        "{revoked}"
    );
    let (code, bad) = certs(
        &service,
        ADMIN_KEY,
        &["revoke", ISSUED[2], "--reason", "lost"],
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(bad.contains("--reason \"lost\""), "{bad}");
    let failing_id = id_of(FAILING);
    let (code, deleted) = certs(&service, ADMIN_KEY, &["delete", &failing_id]).await;
    assert_eq!(code, Some(0), "{deleted}");
    assert!(
        deleted.starts_with(&format!("deleted {FAILING}")),
        "{deleted}"
    );
    let (code, after) = certs(&service, ADMIN_KEY, &["list"]).await;
    assert_eq!(code, Some(0), "nothing failing any more:\n{after}");
    assert!(after.ends_with("3 certificates, 0 failing\n"), "{after}");
}

/// `certfleet certs ARGS` against `service` with the API key in the environment: its exit code
/// and its standard output (standard error when it failed).
pub(crate) async fn certs(service: &Service, key: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_certfleet"));
    command
        .arg("certs")
        .arg("--server")
        .arg(&service.base)
        .args(args)
        .env("CERTFLEET_API_KEY", key)
        .env_remove("CERTFLEET_TOKEN");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the task")
        .expect("run certfleet certs");
    let text = if output.status.success() || output.status.code() == Some(3) {
        output.stdout
    } else {
        output.stderr
    };
    (
        output.status.code(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}
