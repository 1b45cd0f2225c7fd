//! `certfleet notify test`: send one test event (`certfleet.test`) to every configured
//! notification channel, or only to the one `--channel` names, and say what each answered.
//!
//! It reads the config and nothing else: no database is opened and no event is recorded, so it
//! works before the first `serve`, next to a running service, and against a store it cannot
//! reach. Every channel takes the test event whatever its `events` list says. The channels are
//! tried at the same time, each bounded by its own `timeout`; what is printed comes from the
//! channels' own messages, which never name a webhook's URL, its `whsec_` secret or the SMTP
//! password.
//!
//! Exit codes: 0 every channel took the event; 1 at least one did not; 2 the command line or
//! the config is wrong, `--channel` names no configured channel, or no channel is configured.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::extension::ClientId;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use certfleet::config::NotificationsConfig;
use certfleet::domain::EventType;
use certfleet::notify::{self, Channel, Message, Notifier};
use certfleet::util::clock;
use certfleet::util::duration::format_duration;

/// Exit status when at least one channel did not take the event.
const EXIT_FAILED: u8 = 1;
/// Exit status of a usage or config error, as clap's own usage errors.
const EXIT_USAGE: u8 = 2;
/// What to say when there is nothing to test.
const NO_CHANNEL: &str = "no notification channel is configured: add notifications.webhooks or \
                          notifications.email (docs/notifications.md)";
/// `data.message` of the test event.
const TEST_MESSAGE: &str = "certfleet notify test";

/// `certfleet notify`.
#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test event (certfleet.test) to every configured channel and report what each
    /// answered; exit 0 when all took it, 1 when one did not, 2 on a config error.
    Test(TestArgs),
}

/// `certfleet notify test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Print the outcomes as JSON: {"event", "channels": [{"name", "kind", "ok", "message"}]}.
    #[arg(long)]
    pub json: bool,
    /// Test only this channel: a webhook's name, or `email`.
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
}

/// Runs a `notify` subcommand with the config at `config` (or the defaults and `CERTFLEET_*`).
pub fn run(command: NotifyCommand, config: Option<&Path>) -> ExitCode {
    match command {
        NotifyCommand::Test(args) => test(&args, config),
    }
}

/// `notify test`: everything that can go wrong before sending exits 2, then the outcomes decide.
fn test(args: &TestArgs, config: Option<&Path>) -> ExitCode {
    let Some(loaded) = super::load_config(config) else {
        return ExitCode::from(EXIT_USAGE);
    };
    // The other warnings are about serving (auth, storage): `check-config` shows them, and
    // here they would only hide the outcomes.
    for warning in loaded
        .warnings
        .iter()
        .filter(|warning| warning.contains("notifications."))
    {
        eprintln!("certfleet: warning: {warning}");
    }
    let settings = &loaded.config.notifications;
    let notifier = match Notifier::new(settings) {
        Ok(notifier) => notifier,
        Err(message) => {
            eprintln!("certfleet: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let chosen = match choose(&notifier, args.channel.as_deref()) {
        Ok(chosen) => chosen,
        Err(message) => {
            eprintln!("certfleet: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let targets: Vec<Target> = chosen
        .into_iter()
        .map(|index| Target {
            index,
            limit: limit(settings, &notifier.channels()[index]),
        })
        .collect();
    let event = Arc::new(TestEvent::new(clock::now(), &host_name()));
    let notifier = Arc::new(notifier);
    let json = args.json;
    super::run_async_with_code(async move {
        let outcomes = send_all(&notifier, targets, &event).await;
        if json {
            print_json(&event, &outcomes);
        } else {
            print!("{}", report(&event, &outcomes));
        }
        let code = if outcomes.iter().all(|outcome| outcome.ok) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILED)
        };
        Ok::<_, Infallible>(code)
    })
}

/// The one event every channel gets.
#[derive(Debug)]
struct TestEvent {
    /// `evt_...`, as every event id: a standard webhook's `webhook-id`, the mail's Message-ID.
    id: String,
    /// `{"type": "certfleet.test", "timestamp", "data": {"message", "host"}}`.
    body: String,
    /// When it was made, Unix seconds.
    at: i64,
}

impl TestEvent {
    /// A test event with a new id, made at `at` on the machine called `host`.
    fn new(at: i64, host: &str) -> Self {
        let body = json!({
            "type": EventType::Test.as_str(),
            "timestamp": clock::rfc3339(at),
            "data": {"message": TEST_MESSAGE, "host": host},
        });
        Self {
            id: notify::new_id(),
            body: body.to_string(),
            at,
        }
    }

    /// The event as a channel sends it.
    fn message(&self) -> Message<'_> {
        Message {
            id: &self.id,
            kind: EventType::Test,
            body: &self.body,
            at: self.at,
        }
    }
}

/// One channel to send to: its place in [`Notifier::channels`] and its time limit.
#[derive(Debug)]
struct Target {
    index: usize,
    limit: Option<Limit>,
}

/// A channel's configured `timeout` and the key it comes from, for the message.
#[derive(Debug, Clone)]
struct Limit {
    duration: Duration,
    key: String,
}

/// What one channel did with the event.
#[derive(Debug)]
struct Outcome {
    /// The channel's name (a webhook's `name`, or `email`).
    name: String,
    /// `webhook`, `slack` or `email`.
    kind: &'static str,
    /// Whether it took the event.
    ok: bool,
    /// The receiver's answer, or why it did not take the event: one line, no secret.
    message: String,
}

/// The indexes of the channels to test: all of them, or the one named `wanted`.
fn choose(notifier: &Notifier, wanted: Option<&str>) -> Result<Vec<usize>, String> {
    let channels = notifier.channels();
    if channels.is_empty() {
        return Err(NO_CHANNEL.to_owned());
    }
    let Some(wanted) = wanted else {
        return Ok((0..channels.len()).collect());
    };
    match channels.iter().position(|channel| channel.name() == wanted) {
        Some(index) => Ok(vec![index]),
        None => {
            let names: Vec<&str> = channels.iter().map(Channel::name).collect();
            Err(format!(
                "--channel {wanted:?}: no channel has that name; the configured channels are {} \
                 (a webhook's notifications.webhooks[].name, or email for notifications.email)",
                names.join(", ")
            ))
        }
    }
}

/// The `timeout` configured for `channel` (the notifier was built from `settings`, so it is
/// always found; without one, the channel's own request timeouts still bound it).
fn limit(settings: &NotificationsConfig, channel: &Channel) -> Option<Limit> {
    match channel {
        Channel::Email(_) => settings.email.as_ref().map(|email| Limit {
            duration: email.timeout,
            key: "notifications.email.timeout".to_owned(),
        }),
        Channel::Webhook(_) => settings
            .webhooks
            .iter()
            .enumerate()
            .find(|(_, hook)| hook.name == channel.name())
            .map(|(i, hook)| Limit {
                duration: hook.timeout,
                key: format!("notifications.webhooks[{i}].timeout"),
            }),
    }
}

/// Sends the event to every target at once and returns the outcomes in the targets' order.
async fn send_all(
    notifier: &Arc<Notifier>,
    targets: Vec<Target>,
    event: &Arc<TestEvent>,
) -> Vec<Outcome> {
    // Until its task reports, a channel counts as failed: a task that panicked says so below.
    let mut outcomes: Vec<Outcome> = targets
        .iter()
        .map(|target| {
            let channel = &notifier.channels()[target.index];
            Outcome {
                name: channel.name().to_owned(),
                kind: channel.kind(),
                ok: false,
                message: "the send did not finish".to_owned(),
            }
        })
        .collect();
    let mut tasks = JoinSet::new();
    let mut order_of = HashMap::new();
    for (order, target) in targets.into_iter().enumerate() {
        let notifier = Arc::clone(notifier);
        let event = Arc::clone(event);
        let handle = tasks.spawn(async move {
            let channel = &notifier.channels()[target.index];
            (order, send_one(channel, &event, target.limit).await)
        });
        order_of.insert(handle.id(), order);
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, (order, result))) => {
                let (ok, message) = match result {
                    Ok(answer) => (true, answer),
                    Err(why) => (false, why),
                };
                outcomes[order].ok = ok;
                outcomes[order].message = one_line(&message);
            }
            Err(err) => {
                if let Some(&order) = order_of.get(&err.id()) {
                    outcomes[order].message = format!("the send failed: {err}");
                }
            }
        }
    }
    outcomes
}

/// Sends the event to one channel within its time limit: the answer, or why it failed.
async fn send_one(
    channel: &Channel,
    event: &TestEvent,
    limit: Option<Limit>,
) -> Result<String, String> {
    let Some(limit) = limit else {
        return channel
            .send(event.message())
            .await
            .map_err(|e| e.to_string());
    };
    match tokio::time::timeout(limit.duration, channel.send(event.message())).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} ({}; raise it if the receiver is slow)",
            format_duration(limit.duration),
            limit.key
        )),
    }
}

/// The outcomes as text: the event, one line per channel, and how many took it.
fn report(event: &TestEvent, outcomes: &[Outcome]) -> String {
    let mut out = format!("test event {} ({})\n", event.id, EventType::Test.as_str());
    for outcome in outcomes {
        let status = if outcome.ok { "ok" } else { "FAILED" };
        out.push_str(&format!(
            "{status:<8}{} ({}): {}\n",
            outcome.name, outcome.kind, outcome.message
        ));
    }
    let took = outcomes.iter().filter(|outcome| outcome.ok).count();
    let plural = if outcomes.len() == 1 { "" } else { "s" };
    out.push_str(&format!(
        "{took} of {} channel{plural} took the test event\n",
        outcomes.len()
    ));
    out
}

/// The outcomes as JSON, for scripts.
fn print_json(event: &TestEvent, outcomes: &[Outcome]) {
    let channels: Vec<Value> = outcomes
        .iter()
        .map(|outcome| {
            json!({
                "name": outcome.name,
                "kind": outcome.kind,
                "ok": outcome.ok,
                "message": outcome.message,
            })
        })
        .collect();
    let value = json!({"event": event.id, "channels": channels});
    match serde_json::to_string_pretty(&value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("certfleet: cannot print the JSON: {err}"),
    }
}

/// This machine's name, as the SMTP client gives it in `EHLO` (lettre asks the system), or
/// `unknown`.
fn host_name() -> String {
    match ClientId::default() {
        ClientId::Domain(name) if !name.is_empty() => name,
        _ => "unknown".to_owned(),
    }
}

/// `text` on one line: a multi-line SMTP answer must not break the one-line-per-channel output.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_event_is_a_certfleet_test_with_the_host() {
        let event = TestEvent::new(1_800_000_000, "build-1");
        assert!(event.id.starts_with("evt_"), "{}", event.id);
        let body: Value = serde_json::from_str(&event.body).expect("the body is JSON");
        assert_eq!(
            body,
            json!({
                "type": "certfleet.test",
                "timestamp": clock::rfc3339(1_800_000_000),
                "data": {"message": "certfleet notify test", "host": "build-1"},
            })
        );
        assert_ne!(event.id, TestEvent::new(1_800_000_000, "build-1").id);
    }

    #[test]
    fn the_report_has_one_line_per_channel_and_a_count() {
        let event = TestEvent::new(0, "h");
        let outcome = |name: &str, kind, ok, message: &str| Outcome {
            name: name.to_owned(),
            kind,
            ok,
            message: message.to_owned(),
        };
        let text = report(
            &event,
            &[
                outcome("ops", "webhook", true, "HTTP 204"),
                outcome("pager", "slack", false, "HTTP 500: down"),
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!("test event {} (certfleet.test)", event.id)
        );
        assert_eq!(lines[1], "ok      ops (webhook): HTTP 204");
        assert_eq!(lines[2], "FAILED  pager (slack): HTTP 500: down");
        assert_eq!(lines[3], "1 of 2 channels took the test event");
        assert!(
            report(&event, &[outcome("email", "email", true, "x")])
                .ends_with("1 of 1 channel took the test event\n")
        );
    }

    #[test]
    fn answers_are_kept_on_one_line() {
        assert_eq!(
            one_line("535 5.7.8\r\n  bad\tcredentials "),
            "535 5.7.8 bad credentials"
        );
    }
}
