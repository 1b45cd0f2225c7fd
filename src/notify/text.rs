//! An event said in words: the subject and plain-text body of an email, and the message a
//! Slack-compatible webhook shows. Read from the event's stored JSON body, so a notification
//! sent days later says what the event said when it happened.

use serde_json::Value;

use super::Message;
use crate::domain::EventType;

/// A readable event: one subject line and a body of short paragraphs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// What happened, to which names, in one line.
    pub subject: String,
    /// What happened, since when, and what to do.
    pub body: String,
}

/// The subject and body for `message`.
pub fn describe(message: Message<'_>) -> Text {
    let event: Value = serde_json::from_str(message.body).unwrap_or(Value::Null);
    let data = &event["data"];
    let cert = &data["certificate"];
    let names = names(cert);
    let field = |value: &Value| value.as_str().unwrap_or("unknown").to_owned();
    let serial = field(&cert["serial"]);
    let not_after = field(&cert["notAfter"]);
    let (subject, what, todo): (String, String, &str) = match message.kind {
        EventType::CertificateIssued => (
            format!("Certificate issued for {names}"),
            format!(
                "certfleet issued a certificate for {names} (serial {serial}, valid until \
                 {not_after})."
            ),
            "Nothing to do.",
        ),
        EventType::CertificateRenewed => (
            format!("Certificate renewed for {names}"),
            format!(
                "certfleet renewed the certificate for {names}: serial {serial} replaces {}, \
                 valid until {not_after}.",
                field(&data["previousSerial"])
            ),
            "Nothing to do: clients get the new certificate on their next fetch.",
        ),
        EventType::CertificateRenewalFailed => (
            format!("Renewal failed for {names}"),
            format!(
                "Renewing the certificate for {names} failed (attempt {}): {} ({}).\n\nThe \
                 next attempt is at {}. The current certificate (serial {serial}) is valid \
                 until {not_after}.",
                data["attempt"].as_u64().unwrap_or(0),
                field(&data["error"]["message"]),
                field(&data["error"]["code"]),
                field(&data["nextAttempt"]),
            ),
            "Check the error above: a DNS-01 provider's credentials, an HTTP-01 route to \
             certfleet, the CA's rate limits. `certfleet certs show` lists every attempt; \
             `certfleet certs renew` tries again at once.",
        ),
        EventType::CertificateExpiring => (
            format!(
                "Certificate for {names} expires {}",
                field(&data["expiresIn"])
            ),
            format!(
                "The certificate for {names} (serial {serial}) expires at {not_after} \
                 ({}), and no renewal has succeeded yet (threshold {}).",
                field(&data["expiresIn"]),
                field(&data["threshold"]),
            ),
            "Look at why renewals fail (`certfleet certs show`, the renewal_failed \
             notifications) and fix it before the certificate expires.",
        ),
        EventType::CertificateRevoked => (
            format!("Certificate revoked for {names}"),
            format!(
                "The certificate for {names} (serial {serial}) was revoked ({}) by {}.{}",
                field(&data["reason"]),
                field(&data["by"]),
                if data["replacing"].as_bool() == Some(true) {
                    " A replacement with a new key is being issued."
                } else {
                    ""
                }
            ),
            "Clients fetching next get the replacement, if there is one; a revoked \
             certificate is never served again.",
        ),
        EventType::CertificateDeleted => (
            format!("Certificate deleted for {names}"),
            format!(
                "certfleet no longer manages {names}: its key was destroyed by {}{}.",
                field(&data["by"]),
                if data["revoked"].as_bool() == Some(true) {
                    " and its certificate revoked"
                } else {
                    ""
                }
            ),
            "Nothing to do, unless this was not expected.",
        ),
        EventType::CertificateRenewalAdvanced => (
            format!("The CA asks to renew {names} early"),
            format!(
                "The CA's renewal window for {names} (serial {serial}) moved earlier: \
                 renewal is now due at {} instead of {}. A CA does this before revoking \
                 certificates, as in a mass revocation.",
                field(&data["renewAfter"]),
                field(&data["previousRenewAfter"]),
            ),
            "certfleet renews it in that window by itself; make sure clients fetch again \
             soon after.",
        ),
        EventType::DeliveryStale => (
            format!(
                "{} still has the old certificate for {names}",
                field(&data["credential"])
            ),
            format!(
                "The certificate for {names} was renewed at {} (serial {serial}), but {} last \
                 fetched serial {} at {} and has not fetched the new one since.",
                field(&data["renewedAt"]),
                field(&data["credential"]),
                field(&data["deliveredSerial"]),
                field(&data["deliveredAt"]),
            ),
            "The machine behind this credential is probably still serving the old \
             certificate: check its fetch job (cron, `certfleet fetch`) and its logs.",
        ),
        EventType::DnsPersistExpiring => (
            format!(
                "DNS-PERSIST-01 record {} expires {}",
                field(&data["record"]["fqdn"]),
                field(&data["expiresIn"])
            ),
            format!(
                "The DNS-PERSIST-01 record {} (challenges.dnsPersist[{}]) is accepted by the CA \
                 only until {} (persistUntil). After that, certificates for {names} cannot be \
                 issued or renewed through it.",
                field(&data["record"]["fqdn"]),
                data["entry"].as_u64().unwrap_or(0),
                field(&data["record"]["persistUntil"]),
            ),
            "Publish the record `certfleet dns-persist record NAME` prints now (it carries a \
             new persistUntil), beside or instead of the old one.",
        ),
        EventType::Test => (
            "certfleet test notification".to_owned(),
            "This is a test notification from `certfleet notify test`.".to_owned(),
            "Nothing to do: this channel works.",
        ),
    };
    Text {
        subject: format!("[certfleet] {subject}"),
        body: format!(
            "{what}\n\nWhat to do: {todo}\n\nEvent {} ({}), {}.\n",
            message.id,
            message.kind.as_str(),
            crate::util::clock::rfc3339(message.at)
        ),
    }
}

/// The message a Slack-compatible webhook shows: the subject in bold, then the body.
pub fn slack(message: Message<'_>) -> String {
    let text = describe(message);
    format!("*{}*\n{}", escape(&text.subject), escape(&text.body))
}

/// The names of an event's certificate, comma-separated.
fn names(cert: &Value) -> String {
    match cert["names"].as_array() {
        Some(names) if !names.is_empty() => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "a certificate".to_owned(),
    }
}

/// Slack's three escapes: `&`, `<` and `>`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_renewal_says_what_failed_and_what_to_do() {
        let body = serde_json::json!({
            "type": "certificate.renewal_failed",
            "timestamp": "2026-12-07T00:00:00Z",
            "data": {
                "certificate": {"names": ["a.example", "b.example"], "serial": "ab",
                                "notAfter": "2026-12-20T00:00:00Z"},
                "attempt": 3,
                "error": {"code": "validation_failed", "message": "the CA saw 404"},
                "nextAttempt": "2026-12-07T01:00:00Z"
            }
        })
        .to_string();
        let text = describe(Message {
            id: "evt_1",
            kind: EventType::CertificateRenewalFailed,
            body: &body,
            at: 1_796_601_600,
        });
        assert_eq!(
            text.subject,
            "[certfleet] Renewal failed for a.example, b.example"
        );
        for part in [
            "attempt 3",
            "the CA saw 404",
            "validation_failed",
            "2026-12-07T01:00:00Z",
            "What to do:",
            "evt_1",
        ] {
            assert!(text.body.contains(part), "{part} in {}", text.body);
        }
        assert!(
            slack(Message {
                id: "evt_1",
                kind: EventType::CertificateRenewalFailed,
                body: &body,
                at: 0
            })
            .starts_with("*[certfleet] Renewal failed")
        );
    }
}
