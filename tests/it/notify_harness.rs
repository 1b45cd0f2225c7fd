//! Proves the notification harness in `tests/it/common/` (`smtp`, `webhook`) on its own, with
//! independent clients: Python's smtplib against the real aiosmtpd, reqwest against the
//! webhook receiver, and a Standard Webhooks signature made here (HMAC-SHA256 with aws-lc-rs)
//! checked by the published library. Each test fails when a component is missing or the
//! harness is broken (no TLS, no AUTH, wrong records, a stop that does not refuse).

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::common::smtp::{SmtpOptions, SmtpServer, SmtpTls};
use crate::common::webhook::{Received, Receiver};

const WAIT: Duration = Duration::from_secs(10);

/// Sends one message with Python's smtplib. Arguments: how it speaks TLS (`starttls`,
/// `implicit` or `plain`; TLS trusts only the CA file), port, CA file, user (empty: no AUTH),
/// password, AUTH mechanism (`PLAIN` or `LOGIN`), subject.
const SEND_WITH_SMTPLIB: &str = r#"
import smtplib, ssl, sys
from email.message import EmailMessage

mode, port, ca, user, password, mechanism, subject = sys.argv[1:]
message = EmailMessage()
message["From"] = "certfleet@example.test"
message["To"] = "ops@example.test"
message["Subject"] = subject
message.set_content("www.example.test renewed\nnext renewal in 60 days\n")
context = ssl.create_default_context(cafile=ca)
if mode == "implicit":
    client = smtplib.SMTP_SSL("localhost", int(port), context=context, timeout=10)
else:
    client = smtplib.SMTP("localhost", int(port), timeout=10)
    if mode == "starttls":
        client.starttls(context=context)
if user:
    client.ehlo_or_helo_if_needed()
    client.user, client.password = user, password
    client.auth(mechanism, getattr(client, "auth_" + mechanism.lower()))
client.send_message(message)
client.quit()
"#;

/// How `send` logs in: (user, password, mechanism).
type Login<'a> = Option<(&'a str, &'a str, &'a str)>;

/// Runs `SEND_WITH_SMTPLIB`; `Err` carries what smtplib raised.
fn send(server: &SmtpServer, mode: &str, login: Login<'_>, subject: &str) -> Result<(), String> {
    let (user, password, mechanism) = login.unwrap_or(("", "", "PLAIN"));
    let output = Command::new("python3")
        .arg("-c")
        .arg(SEND_WITH_SMTPLIB)
        .arg(mode)
        .arg(server.port().to_string())
        .arg(server.ca_file())
        .args([user, password, mechanism, subject])
        .output()
        .expect("run python3 with smtplib");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn credentials() -> Option<(String, String)> {
    Some(("certfleet".to_owned(), "s3cret-pass".to_owned()))
}

#[tokio::test]
async fn smtp_requires_starttls_and_auth_and_records_the_message() {
    let server = SmtpServer::start(SmtpOptions {
        tls: Some(SmtpTls::StartTls),
        credentials: credentials(),
    })
    .await;
    let good = Some(("certfleet", "s3cret-pass", "PLAIN"));

    send(&server, "starttls", good, "Renewed: www.example.test").expect("send over STARTTLS");
    let mails = server.wait_for_messages(1, WAIT).await;
    let mail = &mails[0];
    assert!(mail.tls && mail.authenticated, "{mail:#?}");
    assert_eq!(mail.subject, "Renewed: www.example.test");
    assert_eq!(
        mail.body,
        "www.example.test renewed\nnext renewal in 60 days\n"
    );
    assert_eq!(mail.mail_from, "certfleet@example.test");
    assert_eq!(mail.rcpt_tos, ["ops@example.test"]);
    assert_eq!(mail.headers["to"], "ops@example.test");

    let login = Some(("certfleet", "s3cret-pass", "LOGIN"));
    send(&server, "starttls", login, "by LOGIN").expect("AUTH LOGIN works too");

    let wrong = Some(("certfleet", "wrong", "PLAIN"));
    let refused = send(&server, "starttls", wrong, "wrong password").expect_err("accepted");
    assert!(refused.contains("535"), "{refused}");
    let anonymous = send(&server, "starttls", None, "no AUTH").expect_err("accepted");
    assert!(anonymous.contains("530"), "{anonymous}");
    // Before STARTTLS nothing but EHLO, STARTTLS and the like is taken, AUTH included.
    let plain = send(&server, "plain", good, "no TLS").expect_err("accepted");
    assert!(plain.contains("530"), "{plain}");

    let subjects: Vec<String> = server.messages().into_iter().map(|m| m.subject).collect();
    assert_eq!(subjects, ["Renewed: www.example.test", "by LOGIN"]);
}

#[tokio::test]
async fn smtp_implicit_tls_and_plain_sessions_are_told_apart() {
    let implicit = SmtpServer::start(SmtpOptions {
        tls: Some(SmtpTls::Implicit),
        credentials: credentials(),
    })
    .await;
    let good = Some(("certfleet", "s3cret-pass", "PLAIN"));
    send(
        &implicit,
        "implicit",
        good,
        "Zertifikat erneuert: bücher.example",
    )
    .expect("send over implicit TLS");
    let mail = &implicit.wait_for_messages(1, WAIT).await[0];
    assert!(mail.tls && mail.authenticated, "{mail:#?}");
    assert_eq!(mail.subject, "Zertifikat erneuert: bücher.example");

    let plain = SmtpServer::start(SmtpOptions::default()).await;
    send(&plain, "plain", None, "plain").expect("send without TLS or AUTH");
    let mail = &plain.wait_for_messages(1, WAIT).await[0];
    assert!(!mail.tls && !mail.authenticated, "{mail:#?}");
    assert_eq!(implicit.messages().len(), 1);
}

#[tokio::test]
async fn receiver_records_refuses_stops_and_restarts() {
    let mut receiver = Receiver::start().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("build reqwest client");
    let url = receiver.url("/hooks/ops");
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/hooks/ops"));
    let post = |body: &'static str| {
        client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("X-Certfleet-Test", "yes")
            .body(body)
            .send()
    };

    let first = post(r#"{"n": 1}"#)
        .await
        .expect("POST reaches the receiver");
    assert_eq!(first.status().as_u16(), 204);
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].path, "/hooks/ops");
    assert_eq!(got[0].body, r#"{"n": 1}"#);
    assert_eq!(got[0].headers["x-certfleet-test"], "yes");
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert!(!got[0].refused && got[0].status == 204);

    receiver.set_status(503);
    let second = post(r#"{"n": 2}"#)
        .await
        .expect("POST reaches the receiver");
    assert_eq!(second.status().as_u16(), 503);
    let all = receiver.requests();
    assert_eq!(all.len(), 2);
    assert!(all[1].refused && all[1].status == 503, "{all:#?}");
    assert_eq!(
        receiver.wait_for(1, WAIT).await.len(),
        1,
        "only accepted ones"
    );

    receiver.stop().await;
    // The client's open connection went down with it (the request fails, reset or closed) ...
    post(r#"{"n": 3}"#)
        .await
        .expect_err("a stopped receiver answered on an open connection");
    // ... and nothing listens for a new one.
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build reqwest client");
    let down = fresh
        .post(&url)
        .body(r#"{"n": 3}"#)
        .send()
        .await
        .expect_err("a stopped receiver accepted a connection");
    assert!(down.is_connect(), "{down:?}");

    receiver.restart().await;
    receiver.set_status(200);
    let back = post(r#"{"n": 4}"#).await.expect("POST after restart");
    assert_eq!(back.status().as_u16(), 200);
    let accepted = receiver.wait_for(2, WAIT).await;
    let bodies: Vec<&str> = accepted.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, [r#"{"n": 1}"#, r#"{"n": 4}"#]);
    assert_eq!(
        receiver.requests().len(),
        3,
        "the refused connection left no record"
    );
}

/// A Standard Webhooks secret: `whsec_` and the base64 of the HMAC key.
const SECRET: &str = "whsec_Y2VydGZsZWV0LWhhcm5lc3Mtd2ViaG9vay1rZXk=";

/// The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`
/// keyed with the secret's decoded bytes (Standard Webhooks, "Signature scheme").
fn sign(secret: &str, id: &str, timestamp: u64, body: &str) -> String {
    let encoded = secret.strip_prefix("whsec_").expect("a whsec_ secret");
    let key = STANDARD.decode(encoded).expect("a base64 secret");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let tag = hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(tag.as_ref()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

#[tokio::test]
async fn verify_accepts_a_standard_signature_and_refuses_tampering() {
    let receiver = Receiver::start().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build reqwest client");
    let body = r#"{"type":"certificate.renewed","data":{"names":["www.example.test"]}}"#;
    let now = unix_now();
    // A signature an hour old is exact but stale: the library refuses it by its timestamp.
    for (id, timestamp) in [("msg_fresh", now), ("msg_stale", now - 3600)] {
        let response = client
            .post(receiver.url("/hook"))
            .header("Content-Type", "application/json")
            .header("Webhook-Id", id)
            .header("Webhook-Timestamp", timestamp.to_string())
            .header("Webhook-Signature", sign(SECRET, id, timestamp, body))
            .body(body)
            .send()
            .await
            .expect("POST reaches the receiver");
        assert_eq!(response.status().as_u16(), 204);
    }
    let got = receiver.wait_for(2, WAIT).await;
    let fresh = got[0].clone();
    let tampered = Received {
        body: body.replace("www.", "evil."),
        ..fresh.clone()
    };

    let verdicts = receiver.verify(SECRET, &[fresh.clone(), tampered, got[1].clone()]);
    assert_eq!(verdicts[0], Ok(()), "{verdicts:?}");
    let tampered = verdicts[1].as_ref().expect_err("a tampered body verified");
    assert!(tampered.contains("No matching signature"), "{tampered}");
    let stale = verdicts[2]
        .as_ref()
        .expect_err("a stale timestamp verified");
    assert!(stale.contains("timestamp"), "{stale}");

    let other = "whsec_b3RoZXItc2VjcmV0LW9mLXRoZS1zYW1lLXNpemU=";
    assert!(
        receiver.verify(other, &[fresh])[0].is_err(),
        "verified with another secret"
    );
}
