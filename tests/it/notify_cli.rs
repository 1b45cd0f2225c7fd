//! `certfleet notify test`, the real binary against real receivers: the webhook receiver of
//! `common/webhook.rs` (its signed requests checked by the published `standardwebhooks`
//! library) and aiosmtpd over STARTTLS with AUTH (`common/smtp.rs`). Every channel gets one
//! test event and its outcome is printed without a secret; failures are exit 1 (receivers that
//! never answer time out together, each after its own `timeout`), a config without channels,
//! a config error or an unknown `--channel` exit 2. The configs point `storage.url` at a
//! directory that does not exist: the command must not open the database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::smtp::{SmtpOptions, SmtpServer, SmtpTls};
use crate::common::webhook::{Received, Receiver};

/// The standard webhook's Standard Webhooks secret.
const SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const SMTP_USER: &str = "certfleet";
const SMTP_PASSWORD: &str = "notify-cli-smtp-password-2718";
/// The subject every channel's readable form starts with.
const SUBJECT: &str = "[certfleet] certfleet test notification";
const WAIT: Duration = Duration::from_secs(10);

/// What one run of the binary printed and how it exited.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Both outputs, for the checks that nothing secret was printed anywhere.
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The event id from the first line, `test event evt_... (certfleet.test)`.
    fn event_id(&self) -> String {
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix("test event "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `test event` line in {self:#?}"))
            .to_owned()
    }

    /// The outcome line of `channel` (`name (kind)`).
    fn line(&self, channel: &str) -> &str {
        self.stdout
            .lines()
            .find(|line| {
                line.get(8..)
                    .is_some_and(|rest| rest.starts_with(&format!("{channel}: ")))
            })
            .unwrap_or_else(|| panic!("no line for {channel} in {self:#?}"))
    }
}

/// A directory holding `certfleet.yaml`: `storage.url` names a database under `data/`, which
/// does not exist, then the `notifications` lines.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new(notifications: &str) -> Setup {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database = dir.path().join("data").join("certfleet.db");
        let yaml = format!(
            "storage:\n  url: \"sqlite://{}\"\n{notifications}",
            database.display()
        );
        std::fs::write(dir.path().join("certfleet.yaml"), yaml).expect("write certfleet.yaml");
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("certfleet.yaml")
    }

    /// Runs `certfleet --config FILE ARGS` with no `CERTFLEET_*` variable of the test's own.
    async fn run(&self, args: &[&str]) -> Run {
        run(&self.config(), args).await
    }

    /// Nothing but the config file was made: no database, no `data/`, no key or lock file.
    fn assert_untouched(&self) {
        let entries: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read the temporary directory")
            .map(|entry| {
                entry
                    .expect("a directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(entries, ["certfleet.yaml"], "notify test touched the store");
    }
}

/// Runs the binary with `--config config` and `args`.
async fn run(config: &Path, args: &[&str]) -> Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_certfleet"));
    command.arg("--config").arg(config).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("CERTFLEET_") {
            command.env_remove(name);
        }
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the task running certfleet")
        .expect("run certfleet");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A webhook entry: `name` at `url`, with `extra` lines (indented for the entry).
fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!("    - name: {name}\n      url: \"{url}\"\n{extra}")
}

/// The `email` entry for `smtp`, logging in with `password`. Its `events` leave out
/// `certfleet.test`: the test event goes to every channel anyway.
fn email(smtp: &SmtpServer, password: &str) -> String {
    format!(
        "  email:\n    host: localhost\n    port: {port}\n    tls: starttls\n    username: {SMTP_USER}\n    password: \"{password}\"\n    from: \"certfleet <certfleet@example.test>\"\n    to: [\"ops@example.test\"]\n    events: [certificate.renewal_failed]\n    caCertificates: \"{ca}\"\n    timeout: 10s\n",
        port = smtp.port(),
        ca = smtp.ca_file().display(),
    )
}

async fn smtp_server() -> SmtpServer {
    SmtpServer::start(SmtpOptions {
        tls: Some(SmtpTls::StartTls),
        credentials: Some((SMTP_USER.to_owned(), SMTP_PASSWORD.to_owned())),
    })
    .await
}

/// The one request the receiver got on `path`.
fn only_at<'a>(received: &'a [Received], path: &str) -> &'a Received {
    let at: Vec<&Received> = received.iter().filter(|r| r.path == path).collect();
    assert_eq!(at.len(), 1, "one request on {path}: {received:#?}");
    at[0]
}

#[tokio::test]
async fn every_channel_takes_the_test_event() {
    let receiver = Receiver::start().await;
    let smtp = smtp_server().await;
    let (ops_url, chat_url) = (receiver.url("/hooks/ops"), receiver.url("/hooks/chat"));
    let setup = Setup::new(&format!(
        "notifications:\n  webhooks:\n{}{}{}",
        webhook(
            "ops",
            &ops_url,
            &format!("      secret: \"{SECRET}\"\n      events: [certificate.expiring]\n")
        ),
        webhook("chat", &chat_url, "      format: slack\n"),
        email(&smtp, SMTP_PASSWORD),
    ));

    let run = setup.run(&["notify", "test"]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    let id = run.event_id();
    assert_eq!(run.line("ops (webhook)"), "ok      ops (webhook): HTTP 204");
    assert_eq!(run.line("chat (slack)"), "ok      chat (slack): HTTP 204");
    let mail_line = run.line("email (email)");
    assert!(
        mail_line.starts_with(&format!(
            "ok      email (email): localhost:{} accepted it (250",
            smtp.port()
        )),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .ends_with("\n3 of 3 channels took the test event\n"),
        "{run:#?}"
    );

    // The standard webhook: signed as the published library checks it, the event's own id.
    let received = receiver.wait_for(2, WAIT).await;
    let ops = only_at(&received, "/hooks/ops");
    assert_eq!(receiver.verify(SECRET, std::slice::from_ref(ops)), [Ok(())]);
    assert_eq!(ops.headers.get("webhook-id"), Some(&id));
    let event: Value = serde_json::from_str(&ops.body).expect("the event is JSON");
    assert_eq!(event["type"], "certfleet.test", "{event}");
    assert_eq!(event["data"]["message"], "certfleet notify test", "{event}");
    assert!(
        event["data"]["host"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{event}"
    );
    assert!(
        event["timestamp"]
            .as_str()
            .and_then(certfleet::util::clock::parse_rfc3339)
            .is_some(),
        "{event}"
    );

    // The Slack-compatible one: a readable message, unsigned (it has no secret).
    let chat = only_at(&received, "/hooks/chat");
    let message: Value = serde_json::from_str(&chat.body).expect("a Slack message is JSON");
    let text = message["text"].as_str().unwrap_or_default();
    assert!(text.starts_with(&format!("*{SUBJECT}*")), "{text}");
    assert!(!chat.headers.contains_key("webhook-signature"), "{chat:#?}");

    // The mail: over TLS, after AUTH, the event id as its Message-ID.
    let mails = smtp.wait_for_messages(1, WAIT).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.subject, SUBJECT);
    assert!(mail.tls && mail.authenticated, "{mail:#?}");
    assert_eq!(mail.rcpt_tos, ["ops@example.test"]);
    assert!(mail.body.contains(&id), "{mail:#?}");
    assert_eq!(
        mail.headers.get("message-id").map(String::as_str),
        Some(format!("<{id}@certfleet>").as_str())
    );

    let printed = run.all();
    for secret in [
        ops_url.as_str(),
        chat_url.as_str(),
        "/hooks/",
        SECRET,
        SECRET.trim_start_matches("whsec_"),
        SMTP_PASSWORD,
    ] {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
    setup.assert_untouched();
}

#[tokio::test]
async fn refusals_are_failed_lines_and_exit_1() {
    let receiver = Receiver::start().await;
    receiver.set_status(503);
    let smtp = smtp_server().await;
    let wrong_password = "not-the-smtp-password-31415";
    let setup = Setup::new(&format!(
        "notifications:\n  webhooks:\n{}{}",
        webhook(
            "ops",
            &receiver.url("/hooks/ops"),
            &format!("      secret: \"{SECRET}\"\n")
        ),
        email(&smtp, wrong_password),
    ));

    let run = setup.run(&["notify", "test"]).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.line("ops (webhook)")
            .starts_with("FAILED  ops (webhook): HTTP 503"),
        "{run:#?}"
    );
    let mail_line = run.line("email (email)");
    assert!(
        mail_line.starts_with(&format!(
            "FAILED  email (email): localhost:{} refused it: ",
            smtp.port()
        )) && mail_line.contains("535"),
        "the SMTP server's refusal of the login: {run:#?}"
    );
    assert!(
        run.stdout
            .ends_with("\n0 of 2 channels took the test event\n"),
        "{run:#?}"
    );

    let json = setup.run(&["notify", "test", "--json"]).await;
    assert_eq!(json.code, Some(1), "{json:#?}");
    let report: Value = serde_json::from_str(&json.stdout).expect("--json prints JSON");
    assert!(
        report["event"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_")),
        "{report}"
    );
    let channels = report["channels"].as_array().expect("a list of channels");
    let summary: Vec<(&str, &str, bool)> = channels
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default(),
                c["kind"].as_str().unwrap_or_default(),
                c["ok"] == true,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("ops", "webhook", false), ("email", "email", false)]
    );
    assert!(
        channels[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("HTTP 503")),
        "{report}"
    );

    // Both runs reached the receiver (refused) and no mail got through.
    assert_eq!(receiver.requests().len(), 2, "{:#?}", receiver.requests());
    assert!(smtp.messages().is_empty(), "{:#?}", smtp.messages());
    for printed in [run.all(), json.all()] {
        for secret in [wrong_password, SECRET, "/hooks/ops"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
    }
    setup.assert_untouched();
}

#[tokio::test]
async fn no_channel_and_config_errors_are_exit_2() {
    let setup = Setup::new("");
    let run = setup.run(&["notify", "test"]).await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr.contains(
            "no notification channel is configured: add notifications.webhooks or \
             notifications.email (docs/notifications.md)"
        ),
        "{run:#?}"
    );
    assert!(run.stdout.is_empty(), "{run:#?}");
    setup.assert_untouched();

    // A config error: the same report as check-config's, and exit 2.
    let broken = Setup::new("notifications:\n  webhoks: []\n");
    let run = broken.run(&["notify", "test"]).await;
    let check = broken.run(&["check-config"]).await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert_ne!(check.code, Some(0), "{check:#?}");
    assert!(run.stderr.contains("notifications.webhoks"), "{run:#?}");
    assert_eq!(run.stderr, check.stderr);
}

#[tokio::test]
async fn channel_picks_one_and_an_unknown_name_is_exit_2() {
    let receiver = Receiver::start().await;
    let setup = Setup::new(&format!(
        "notifications:\n  webhooks:\n{}{}",
        webhook(
            "ops",
            &receiver.url("/hooks/ops"),
            &format!("      secret: \"{SECRET}\"\n")
        ),
        webhook(
            "chat",
            &receiver.url("/hooks/chat"),
            "      format: slack\n"
        ),
    ));

    let run = setup.run(&["notify", "test", "--channel", "pager"]).await;
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr.contains("--channel \"pager\"") && run.stderr.contains("ops, chat"),
        "the message lists the configured names: {run:#?}"
    );
    assert!(receiver.requests().is_empty(), "{:#?}", receiver.requests());

    let run = setup.run(&["notify", "test", "--channel", "chat"]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.line("chat (slack)"), "ok      chat (slack): HTTP 204");
    assert!(!run.stdout.contains("ops (webhook)"), "{run:#?}");
    assert!(
        run.stdout
            .ends_with("\n1 of 1 channel took the test event\n"),
        "{run:#?}"
    );
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].path, "/hooks/chat");
    setup.assert_untouched();
}

#[tokio::test]
async fn silent_receivers_time_out_together() {
    // Connections complete in the listen backlog and nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a silent listener");
    let port = silent.local_addr().expect("its address").port();
    let hooks: String = ["a", "b", "c"]
        .iter()
        .map(|name| {
            webhook(
                name,
                &format!("http://127.0.0.1:{port}/hooks/{name}"),
                &format!("      secret: \"{SECRET}\"\n      timeout: 1s\n"),
            )
        })
        .collect();
    let setup = Setup::new(&format!("notifications:\n  webhooks:\n{hooks}"));

    let started = std::time::Instant::now();
    let run = setup.run(&["notify", "test"]).await;
    let took = started.elapsed();
    assert_eq!(run.code, Some(1), "{run:#?}");
    for name in ["a", "b", "c"] {
        let line = run.line(&format!("{name} (webhook)"));
        assert!(
            line.starts_with(&format!("FAILED  {name} (webhook): "))
                && (line.contains("timed out") || line.contains("no answer within 1s")),
            "{run:#?}"
        );
    }
    // One after the other would take at least 3 s.
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?}: {run:#?}"
    );
    assert!(!run.all().contains("/hooks/"), "{run:#?}");
    drop(silent);
}
