//! The admin actions on a real Pebble: revocation at the CA (Pebble's management API reports the
//! serial revoked), the replacement a compromised key gets, a revoked certificate never served
//! again, deletion (no renewal afterwards, the key gone from the database, the history kept), the
//! 403 a non-admin credential gets, and the audit line each action writes (from the real binary).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;
use common::process;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service, base_yaml, json};
use common::{Pebble, PebbleOptions, free_port};

const CERT: &str = "/api/certificate";
const REVOKE: &str = "/api/certificate/revoke";

async fn issue(service: &Service, name: &str) -> Value {
    let response = service.post(CERT, ADMIN_KEY, json!({"domain": name})).await;
    assert_eq!(response.status(), 200, "{name}");
    json(response).await
}

async fn detail(service: &Service, id: &str) -> Value {
    let response = service
        .get(&format!("/api/certificates/{id}"), ADMIN_KEY)
        .await;
    assert_eq!(response.status(), 200, "detail of {id}");
    json(response).await
}

/// The inventory entry of the single-name identity `name`.
async fn entry(service: &Service, name: &str) -> Value {
    let response = service
        .get(&format!("/api/certificates?name={name}"), ADMIN_KEY)
        .await;
    assert_eq!(response.status(), 200);
    let page = json(response).await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "one entry for {name}: {page}");
    items[0].clone()
}

#[tokio::test]
async fn revocation_reaches_the_ca_replaces_a_compromised_key_and_is_admin_only() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let (compromised, retired) = ("revoke-1.a.example.test", "revoke-2.a.example.test");
    let first = issue(&service, compromised).await;
    let other = issue(&service, retired).await;
    let old_serial = entry(&service, compromised).await["serial"]
        .as_str()
        .expect("serial")
        .to_owned();
    assert_eq!(pebble.cert_status(&old_serial).await, "Valid");

    // A fleet credential allowed the names may neither revoke nor delete.
    let body = json!({"domain": compromised, "reason": "keyCompromise"});
    let refused = service.post(REVOKE, FLEET_A_KEY, body.clone()).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json(refused).await["code"], "admin_required");
    let refused = service
        .delete(&format!("{CERT}?domain={compromised}"), FLEET_A_KEY)
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json(refused).await["code"], "admin_required");
    assert_eq!(pebble.cert_status(&old_serial).await, "Valid");

    // Bad input: a clear 400, and nothing revoked.
    for (bad, code) in [
        (
            json!({"domain": compromised, "reason": "KeyCompromise"}),
            "invalid_body",
        ),
        (json!({"domain": compromised}), "invalid_body"),
        (json!({"reason": "superseded"}), "invalid_body"),
        (
            json!({"domain": "a..b", "reason": "superseded"}),
            "invalid_domain",
        ),
    ] {
        let response = service.post(REVOKE, ADMIN_KEY, bad.clone()).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(json(response).await["code"], code, "{bad}");
    }
    let unknown = json!({"domain": "never.a.example.test", "reason": "superseded"});
    let response = service.post(REVOKE, ADMIN_KEY, unknown).await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["code"], "not_found");
    assert_eq!(pebble.cert_status(&old_serial).await, "Valid");

    // keyCompromise: revoked at the CA, and a replacement with a new key at once.
    let issued_before = pebble.issued_count();
    let response = service.post(REVOKE, ADMIN_KEY, body).await;
    assert_eq!(response.status(), 200);
    let revoked = json(response).await;
    assert_eq!(revoked["serial"], old_serial.as_str());
    assert_eq!(revoked["reason"], "keyCompromise");
    assert_eq!(revoked["replacement"]["status"], "issued", "{revoked}");
    let new_serial = revoked["replacement"]["serial"].as_str().expect("serial");
    assert_ne!(new_serial, old_serial);
    assert!(
        revoked.get("privateKey").is_none(),
        "no key in an admin answer"
    );
    assert_eq!(pebble.cert_status(&old_serial).await, "Revoked");
    assert_eq!(pebble.issued_count(), issued_before + 1);
    let fetched = service
        .get(&format!("{CERT}?domain={compromised}"), FLEET_A_KEY)
        .await;
    assert_eq!(fetched.status(), 200);
    let fetched = json(fetched).await;
    assert_ne!(fetched["privateKey"], first["privateKey"], "a new key");
    assert_ne!(fetched["certificate"], first["certificate"]);
    let listed = entry(&service, compromised).await;
    assert_eq!(listed["status"], "valid");
    assert_eq!(listed["serial"], new_serial);
    let history = detail(&service, listed["id"].as_str().expect("id")).await["history"].clone();
    let triggers: Vec<&str> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["trigger"].as_str().expect("trigger"))
        .collect();
    assert_eq!(
        triggers,
        ["replacement", "revocation", "request"],
        "{history}"
    );
    let revocation = &history[1];
    assert_eq!(revocation["outcome"], "success");
    assert_eq!(revocation["serial"], old_serial.as_str());
    let message = revocation["message"].as_str().expect("message");
    assert!(
        message.contains("keyCompromise") && message.contains("by psk:admin from 127.0.0.1"),
        "{message}"
    );

    // unspecified: revoked, no replacement; never served again; listed as revoked.
    let other_serial = entry(&service, retired).await["serial"]
        .as_str()
        .expect("serial")
        .to_owned();
    let response = service
        .post(
            REVOKE,
            ADMIN_KEY,
            json!({"domains": [retired], "keyType": "ecdsa-p256", "reason": "unspecified"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let revoked = json(response).await;
    assert_eq!(revoked["replacement"], Value::Null);
    assert_eq!(pebble.cert_status(&other_serial).await, "Revoked");
    let gone = service
        .get(&format!("{CERT}?domain={retired}"), FLEET_A_KEY)
        .await;
    assert_eq!(gone.status(), 404, "a revoked certificate is never served");
    let listed = entry(&service, retired).await;
    assert_eq!(listed["status"], "revoked");
    assert_eq!(listed["revocationReason"], "unspecified");
    assert!(
        listed["revokedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let revoked_again = service
        .post(
            REVOKE,
            ADMIN_KEY,
            json!({"domain": retired, "reason": "superseded"}),
        )
        .await;
    assert_eq!(revoked_again.status(), 404, "already revoked");
    assert_eq!(
        service
            .count_rows("certificates WHERE revoked_at IS NOT NULL")
            .await,
        1
    );
    // A client asking again gets a new certificate.
    let reissued = issue(&service, retired).await;
    assert_ne!(reissued["certificate"], other["certificate"]);
    assert_eq!(entry(&service, retired).await["status"], "valid");
}

/// certfleet, the real binary, on its own SQLite file.
struct Binary {
    process: process::Process,
    base: String,
    db_url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Binary {
    async fn start(pebble: &Pebble) -> Binary {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
        let port = free_port();
        let yaml = base_yaml(pebble, &db_url, "30s").replace(
            "server:\n",
            &format!("server:\n  listen: \"127.0.0.1:{port}\"\n  metricsListen: \"\"\n"),
        );
        let config = dir.path().join("certfleet.yaml");
        std::fs::write(&config, yaml).expect("write the config");
        let binary = Binary {
            process: process::serve(&config, Some("info"), None),
            base: format!("http://127.0.0.1:{port}"),
            db_url,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = binary.request(reqwest::Method::GET, "/readyz", "").await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return binary;
            }
            assert!(
                Instant::now() < deadline,
                "not ready:\n{}",
                binary.process.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("APIKey {key}"))
            .send()
            .await
    }

    async fn call(&self, method: reqwest::Method, path: &str, key: &str) -> (u16, Value) {
        let response = self
            .request(method, path, key)
            .await
            .expect("reaches certfleet");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn rows(&self, sql: &str) -> i64 {
        let pool = sqlx::SqlitePool::connect(&self.db_url)
            .await
            .expect("open the database");
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&pool)
            .await
            .expect("count");
        pool.close().await;
        count
    }
}

#[tokio::test]
async fn deletion_stops_renewals_destroys_the_key_and_keeps_the_history() {
    // 30-second certificates: renewal would start about 20 s after issuance.
    let pebble = Pebble::start(PebbleOptions {
        validity_secs: Some(30),
        ..Default::default()
    })
    .await;
    let binary = Binary::start(&pebble).await;
    let (kept, deleted) = ("keep.a.example.test", "delete.a.example.test");
    for name in [kept, deleted] {
        let response = binary
            .client
            .post(format!("{}{CERT}", binary.base))
            .header("Authorization", format!("APIKey {ADMIN_KEY}"))
            .json(&json!({"domain": name}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 200, "{name}");
    }
    let issued_at = Instant::now();
    let (_, page) = binary
        .call(
            reqwest::Method::GET,
            &format!("/api/certificates?name={deleted}"),
            ADMIN_KEY,
        )
        .await;
    let id = page["items"][0]["id"].as_str().expect("id").to_owned();
    let serial = page["items"][0]["serial"]
        .as_str()
        .expect("serial")
        .to_owned();

    let path = format!("{CERT}?domain={deleted}&revoke=true");
    let (status, body) = binary
        .call(reqwest::Method::DELETE, &path, FLEET_A_KEY)
        .await;
    assert_eq!((status, &body["code"]), (403, &json!("admin_required")));
    let (status, body) = binary
        .call(reqwest::Method::DELETE, &format!("{path}x"), ADMIN_KEY)
        .await;
    assert_eq!((status, &body["code"]), (400, &json!("invalid_body")));
    assert_eq!(pebble.cert_status(&serial).await, "Valid");

    let (status, body) = binary.call(reqwest::Method::DELETE, &path, ADMIN_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true);
    assert_eq!(body["serial"], serial.as_str());
    assert_eq!(body["id"], id.as_str());
    assert_eq!(pebble.cert_status(&serial).await, "Revoked");
    let (status, _) = binary.call(reqwest::Method::DELETE, &path, ADMIN_KEY).await;
    assert_eq!(status, 404, "nothing left to delete");

    // Not served, not listed, the key gone from the database; the history stays.
    let (status, _) = binary
        .call(
            reqwest::Method::GET,
            &format!("{CERT}?domain={deleted}"),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(status, 404);
    let (_, page) = binary
        .call(reqwest::Method::GET, "/api/certificates", ADMIN_KEY)
        .await;
    let listed: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["names"][0].as_str().expect("name"))
        .collect();
    assert_eq!(listed, [kept]);
    let gone = format!("SELECT COUNT(*) FROM certificates WHERE names = '{deleted}'");
    assert_eq!(
        binary.rows(&gone).await,
        0,
        "the certificate and its key row"
    );
    assert_eq!(binary.rows("SELECT COUNT(*) FROM certificates").await, 1);
    let (status, detail) = binary
        .call(
            reqwest::Method::GET,
            &format!("/api/certificates/{id}"),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(detail["status"], "deleted");
    let triggers: Vec<&str> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["trigger"].as_str().expect("trigger"))
        .collect();
    assert_eq!(triggers, ["deletion", "revocation", "request"], "{detail}");

    // Past the renewal time: the kept certificate is renewed, the deleted one never again.
    let deadline = issued_at + Duration::from_secs(45);
    loop {
        let (_, page) = binary
            .call(
                reqwest::Method::GET,
                &format!("/api/certificates?name={kept}"),
                ADMIN_KEY,
            )
            .await;
        let history_id = page["items"][0]["id"].as_str().expect("id").to_owned();
        let (_, kept_detail) = binary
            .call(
                reqwest::Method::GET,
                &format!("/api/certificates/{history_id}"),
                ADMIN_KEY,
            )
            .await;
        let renewed = kept_detail["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|h| h["trigger"] == "renewal" && h["outcome"] == "success");
        if renewed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the kept certificate was not renewed:\n{}",
            binary.process.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(pebble.issued_count(), 3, "two issuances and one renewal");
    let orders = format!("SELECT COUNT(*) FROM attempts WHERE names = '{deleted}'");
    assert_eq!(
        binary.rows(&orders).await,
        3,
        "no attempt after the deletion"
    );

    // One audit line per admin action: who, what, from where.
    let log = binary.process.log();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("certfleet::audit") && l.contains("admin action"))
        .collect();
    assert_eq!(audit.len(), 1, "{log}");
    for field in [
        "principal=admin",
        "method=\"psk\"",
        "action=\"delete\"",
        &format!("names={deleted}"),
        &format!("serial=\"{serial}\""),
        "detail=\"revoked:cessationOfOperation\"",
        "remote=127.0.0.1:",
    ] {
        assert!(audit[0].contains(field), "{field} in {}", audit[0]);
    }
}
