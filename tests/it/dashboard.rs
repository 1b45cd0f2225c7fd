//! The dashboard in a real browser (Debian's Chromium, driven over WebDriver by chromedriver)
//! against certfleet on a real Pebble: signing in (a wrong key refused), the list with its
//! filter, one certificate's page, a forced renewal showing the new serial, a revocation with
//! confirmation (Pebble reports the old serial revoked), deletion, the read-only view of a fleet
//! key, and forms refused without their token or from another site; a webhook whose receiver is
//! down: the list's box of notification problems and a certificate's notifications with the
//! failed attempts. Screenshots of the list, of a certificate's page and of its notifications
//! are kept in `target/test-output/`.

use serde_json::{Value, json};

use crate::common;
use common::browser::Browser;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service, json};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";
const FAILING: &str = "unreachable.ui.example.test";
const NAMES: [&str; 2] = ["ui.a.example.test", "ui-2.dash.example.test"];
/// The ids of the `NAMES`' certificates (ECDSA P-256).
const IDS: [&str; 2] = [
    "ZWNkc2EtcDI1Nnx1aS5hLmV4YW1wbGUudGVzdA",
    "ZWNkc2EtcDI1Nnx1aS0yLmRhc2guZXhhbXBsZS50ZXN0",
];

/// A webhook `ops` to a loopback port where nothing listens, retried every second or two.
fn unreachable_webhook(mut yaml: String) -> String {
    let port = common::free_port();
    yaml.push_str(&format!(
        "notifications:
  webhooks:
    - name: ops
      url: \"http://127.0.0.1:{port}/hook\"
      secret: \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"
      timeout: 1s
  retryInitial: 1s
  retryMax: 2s
"
    ));
    yaml
}

/// Waits (up to 20 s) until the first notification of the newest event of the certificate `id`
/// has been tried at least once, and returns that event.
async fn tried_event(service: &Service, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let detail = json(
            service
                .get(&format!("/api/certificates/{id}"), ADMIN_KEY)
                .await,
        )
        .await;
        let event = &detail["events"][0];
        if event["notifications"][0]["attempts"].as_u64() >= Some(1) {
            return event.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery attempt in 20 s: {detail}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The text of the `<dd>` after the `<dt>` labelled `label` on a certificate's page.
async fn field(browser: &Browser, label: &str) -> String {
    let dd = browser
        .one_xpath(&format!("//dt[text()='{label}']/following-sibling::dd[1]"))
        .await;
    browser.text(&dd).await
}

async fn sign_in(browser: &Browser, base: &str, key: &str) {
    browser.go(&format!("{base}/ui")).await;
    assert!(
        browser.url().await.ends_with("/ui/login"),
        "to the sign-in page"
    );
    let input = browser.one("input[name=key]").await;
    browser.type_into(&input, key).await;
    browser
        .click(&browser.one("form button[type=submit]").await)
        .await;
    // Either the list (signed in) or the sign-in page again (refused).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while browser.all("main h1").await.is_empty()
        || browser.url().await.ends_with("/ui/login")
            && browser.all("[role=alert]").await.is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no page after signing in"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn rows(browser: &Browser) -> Vec<String> {
    let mut out = Vec::new();
    for row in browser.all("tbody tr").await {
        out.push(browser.text(&row).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_shows_renews_revokes_and_deletes_in_a_browser() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    pebble.add_a(FAILING, "127.0.0.2").await;
    let service = Service::start_with(&pebble, "30s", unreachable_webhook).await;
    for name in NAMES {
        let response = service.post(CERT, ADMIN_KEY, json!({"domain": name})).await;
        assert_eq!(response.status(), 200, "{name}");
    }
    let failed = service
        .post(CERT, ADMIN_KEY, json!({"domain": FAILING}))
        .await;
    assert_eq!(failed.status(), 502);
    // The issuance's event went to `ops`, which refused the connection.
    let issued = tried_event(&service, IDS[0]).await;
    tried_event(&service, IDS[1]).await;
    assert_eq!(issued["type"], "certificate.issued", "{issued}");
    assert_eq!(issued["notifications"][0]["channel"], "ops", "{issued}");
    let base = service.base.clone();
    let browser = Browser::start(1280, 1000).await;

    // Unsigned requests go to the sign-in page; a wrong key is refused there.
    browser.go(&format!("{base}/ui/certificates")).await;
    assert!(browser.url().await.ends_with("/ui/login"));
    sign_in(&browser, &base, "not-a-key-of-this-server").await;
    assert!(
        browser.url().await.ends_with("/ui/login"),
        "still signing in"
    );
    let alert = browser.one("[role=alert]").await;
    assert!(
        browser.text(&alert).await.contains("invalid"),
        "{}",
        browser.text(&alert).await
    );
    assert!(!browser.source().await.contains("not-a-key-of-this-server"));

    // The admin sees every certificate, the failing one marked.
    sign_in(&browser, &base, ADMIN_KEY).await;
    browser.wait_url("/ui/certificates").await;
    let cookie = browser.cookie("certfleet_session").await;
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert_eq!(cookie["path"], "/ui", "{cookie}");
    assert!(
        cookie["expiry"].as_i64().is_some(),
        "an expiring cookie: {cookie}"
    );
    let listed = rows(&browser).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(
        listed[0].contains("backing_off") && listed[0].contains(FAILING),
        "{listed:?}"
    );
    assert!(listed[0].contains("validation_failed"), "{listed:?}");
    assert_eq!(browser.all("tr.failing").await.len(), 1);
    for name in NAMES {
        assert!(
            listed
                .iter()
                .any(|r| r.contains(name) && r.contains("valid")),
            "{listed:?}"
        );
    }
    // Above them, the latest notification problems, each linking to its certificate.
    let problems = browser
        .one_xpath("//section[h2='Notification problems']")
        .await;
    let problems = browser.text(&problems).await;
    assert!(
        problems.contains("ops") && problems.contains("certificate.issued"),
        "{problems}"
    );
    assert!(
        problems.contains(NAMES[0]) && problems.contains(NAMES[1]),
        "{problems}"
    );
    assert!(
        problems.contains("cannot connect"),
        "the receiver's error: {problems}"
    );
    let event_id = issued["id"].as_str().expect("an event id");
    let to_event = browser
        .one_xpath(&format!("//section//a[text()='{}']", NAMES[0]))
        .await;
    assert_eq!(
        browser.attribute(&to_event, "href").await,
        format!("/ui/certificates/{}#{event_id}", IDS[0]),
        "the link goes to the event"
    );
    let shot = browser.screenshot("dashboard-list").await;
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 10_000);

    // Filters.
    let name = browser.one("input[name=name]").await;
    browser.type_into(&name, "*.dash.example.test").await;
    browser
        .click(&browser.one("form.filters button").await)
        .await;
    browser.wait_url("status=").await;
    let filtered = rows(&browser).await;
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert!(filtered[0].contains(NAMES[1]));
    browser
        .go(&format!("{base}/ui/certificates?status=backing_off"))
        .await;
    let failing = rows(&browser).await;
    assert_eq!(failing.len(), 1);
    assert!(failing[0].contains(FAILING));

    // One certificate: its fields, history and who received it; no private key.
    browser.go(&format!("{base}/ui/certificates")).await;
    let link = browser
        .one_xpath(&format!("//td[@class='names']/a[text()='{}']", NAMES[0]))
        .await;
    browser.click(&link).await;
    browser
        .wait_url("ZWNkc2EtcDI1Nnx1aS5hLmV4YW1wbGUudGVzdA")
        .await;
    let detail_url = browser.url().await;
    let first_serial = field(&browser, "Serial").await;
    assert_eq!(field(&browser, "Status").await, "valid");
    let source = browser.source().await;
    assert!(
        source.contains("psk:admin") && source.contains("request"),
        "history and deliveries"
    );
    assert!(!source.contains("PRIVATE KEY"), "no key on the page");
    assert!(
        !source.contains("<script"),
        "no script: it works with JavaScript off"
    );
    browser.screenshot("dashboard-detail").await;

    // Its notifications: the event, the channel given up or retrying, the receiver's error, and
    // every attempt, folded.
    let section = browser
        .one_xpath("//h2[@id='notifications']/following-sibling::div[contains(@class,'event')][1]")
        .await;
    let shown = browser.text(&section).await;
    assert!(
        shown.contains("certificate.issued") && shown.contains("ops"),
        "{shown}"
    );
    assert!(shown.contains(event_id), "{shown}");
    assert!(
        shown.contains("cannot connect") || shown.contains("Connection refused"),
        "{shown}"
    );
    assert!(
        !browser
            .all("h2#notifications ~ .event details")
            .await
            .is_empty(),
        "the attempts are folded"
    );
    let summary = browser
        .one_xpath("(//div[contains(@class,'event')]//summary)[1]")
        .await;
    browser.click(&summary).await;
    let attempts = browser
        .one_xpath("(//div[contains(@class,'event')]//ol)[1]")
        .await;
    let attempts = browser.text(&attempts).await;
    assert!(
        attempts.contains("failed") && attempts.contains(" ms)"),
        "every attempt, opened: {attempts}"
    );
    browser.go(&format!("{detail_url}#notifications")).await;
    browser.screenshot("dashboard-notifications").await;
    browser.go(&detail_url).await;

    // A forced renewal: back on the page with the new serial.
    browser
        .click(&browser.one("form[action$='/renew'] button").await)
        .await;
    browser.wait_url("?done=renewed").await;
    let renewed_serial = field(&browser, "Serial").await;
    assert_ne!(renewed_serial, first_serial);
    let notice = browser.one("[role=status]").await;
    assert!(browser.text(&notice).await.starts_with("Renewed"));

    // Revocation asks first; confirmed, Pebble reports the serial revoked and the replacement is
    // shown.
    browser.select("select[name=reason]", "keyCompromise").await;
    browser
        .click(&browser.one("form[action$='/revoke'] button").await)
        .await;
    browser.wait_url("/revoke").await;
    let source = browser.source().await;
    assert!(source.contains("cannot be undone") && source.contains(&renewed_serial));
    assert_eq!(
        pebble.cert_status(&renewed_serial).await,
        "Valid",
        "not before confirming"
    );
    browser
        .click(&browser.one_xpath("//button[text()='Yes, revoke']").await)
        .await;
    browser.wait_url("?done=revoked").await;
    assert_eq!(pebble.cert_status(&renewed_serial).await, "Revoked");
    let replacement = field(&browser, "Serial").await;
    assert_ne!(replacement, renewed_serial, "the replacement is served");
    assert_eq!(field(&browser, "Status").await, "valid");
    assert!(browser.source().await.contains("revocation"));

    // A form without its token, or from another site, is refused.
    let cookie = browser.cookie("certfleet_session").await;
    let cookie = format!(
        "certfleet_session={}",
        cookie["value"].as_str().expect("value")
    );
    let renew = detail_url.replace("?done=revoked", "") + "/renew";
    let renew = renew.split('?').next().expect("url").to_owned();
    let client = service.client();
    let forged = client
        .post(&renew)
        .header("Cookie", &cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("csrf=wrong")
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.expect("body").contains("csrf_failed"));
    let tokenless = client
        .post(&renew)
        .header("Cookie", &cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .expect("POST");
    assert_eq!(tokenless.status(), 403);
    let token = {
        browser.go(&renew.replace("/renew", "")).await;
        let input = browser.one("form[action$='/renew'] input[name=csrf]").await;
        browser.attribute(&input, "value").await
    };
    let other_site = client
        .post(&renew)
        .header("Cookie", &cookie)
        .header("Origin", "https://evil.example")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(other_site.status(), 403, "another site's form");
    assert_eq!(
        field(&browser, "Serial").await,
        replacement,
        "nothing was renewed"
    );

    // Deletion of the failing identity, confirmed: gone from the list.
    browser
        .go(&format!("{base}/ui/certificates?status=backing_off"))
        .await;
    browser
        .click(
            &browser
                .one_xpath(&format!("//td[@class='names']/a[text()='{FAILING}']"))
                .await,
        )
        .await;
    browser.wait_url("LnRlc3Q").await;
    browser
        .click(&browser.one("form[action$='/delete'] button").await)
        .await;
    browser.wait_url("/delete").await;
    browser
        .click(&browser.one_xpath("//button[text()='Yes, delete']").await)
        .await;
    browser.wait_url("/ui/certificates?done=deleted").await;
    let left = rows(&browser).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|r| !r.contains(FAILING)));

    // A phone-sized window: the list still reads.
    browser.resize(390, 844).await;
    browser.screenshot("dashboard-list-phone").await;
    browser
        .go(&format!("{base}/ui/certificates/{}#{event_id}", IDS[0]))
        .await;
    browser.screenshot("dashboard-notifications-phone").await;

    // Signed out, then in with a fleet key: its own certificate only, read-only.
    browser
        .click(&browser.one("form[action='/ui/logout'] button").await)
        .await;
    browser.wait_url("/ui/login").await;
    browser.go(&format!("{base}/ui/certificates")).await;
    assert!(browser.url().await.ends_with("/ui/login"), "signed out");
    sign_in(&browser, &base, FLEET_A_KEY).await;
    let fleet_rows = rows(&browser).await;
    assert_eq!(fleet_rows.len(), 1, "{fleet_rows:?}");
    assert!(fleet_rows[0].contains(NAMES[0]));
    let problems = browser
        .one_xpath("//section[h2='Notification problems']")
        .await;
    let problems = browser.text(&problems).await;
    assert!(
        problems.contains(NAMES[0]) && !problems.contains(NAMES[1]),
        "only its own: {problems}"
    );
    browser
        .click(
            &browser
                .one_xpath(&format!("//td[@class='names']/a[text()='{}']", NAMES[0]))
                .await,
        )
        .await;
    browser
        .wait_url("ZWNkc2EtcDI1Nnx1aS5hLmV4YW1wbGUudGVzdA")
        .await;
    assert!(
        browser.all("form[action$='/revoke']").await.is_empty(),
        "no revoke"
    );
    assert!(
        browser.all("form[action$='/delete']").await.is_empty(),
        "no delete"
    );
    assert_eq!(browser.all("form[action$='/renew']").await.len(), 1);
    let header = browser.one("header .who").await;
    assert!(browser.text(&header).await.contains("read-only"));
    // A read-only session's valid form to revoke is still refused.
    let fleet_cookie = browser.cookie("certfleet_session").await;
    let fleet_cookie = format!(
        "certfleet_session={}",
        fleet_cookie["value"].as_str().expect("value")
    );
    let input = browser.one("form[action$='/renew'] input[name=csrf]").await;
    let fleet_token = browser.attribute(&input, "value").await;
    let refused = client
        .post(renew.replace("/renew", "/revoke"))
        .header("Cookie", &fleet_cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={fleet_token}&reason=keyCompromise&confirm=yes"
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("admin_required")
    );
    assert_eq!(
        pebble.cert_status(&replacement).await,
        "Valid",
        "not revoked"
    );

    // The API knows what the browser did.
    let listed: Value = json(service.get("/api/certificates", ADMIN_KEY).await).await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 2);
}

#[tokio::test]
async fn the_dashboard_is_html_with_strict_headers_and_can_be_turned_off() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let home = client
        .get(format!("{}/ui", service.base))
        .send()
        .await
        .expect("GET /ui");
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/ui/login");
    let login = client
        .get(format!("{}/ui/login", service.base))
        .send()
        .await
        .expect("GET /ui/login");
    assert_eq!(login.status(), 200);
    let headers = login.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers["cache-control"], "no-store");
    // A refused key: 401, the form again, the key not echoed, no cookie.
    let refused = client
        .post(format!("{}/ui/login", service.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("key=wrong-key-0123456789")
        .send()
        .await
        .expect("POST /ui/login");
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("set-cookie").is_none());
    assert!(
        !refused
            .text()
            .await
            .expect("body")
            .contains("wrong-key-0123456789")
    );
    // A forged cookie is no session.
    let forged = client
        .get(format!("{}/ui/certificates", service.base))
        .header("Cookie", "certfleet_session=v1.abc.AAAA")
        .send()
        .await
        .expect("GET");
    assert_eq!(forged.status(), 303);
    service.stop().await;

    let off = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace("server:\n", "server:\n  ui: false\n")
    })
    .await;
    let response = client
        .get(format!("{}/ui/login", off.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["code"], "not_found");
}
