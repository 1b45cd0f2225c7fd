//! Webhooks (`notifications.webhooks[]`): the event's JSON signed the Standard Webhooks way, or
//! a readable message in the form Slack's incoming webhooks take (Mattermost and Rocket.Chat
//! accept it too).
//!
//! A signed request carries `webhook-id` (the event id: receivers deduplicate by it),
//! `webhook-timestamp` (Unix seconds of this attempt: receivers refuse old ones) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the bytes of
//! the `whsec_` secret, so the published `standardwebhooks` libraries verify it. Redirects are
//! not followed, each request has the webhook's `timeout`, and at most [`ANSWER_LIMIT`] bytes of
//! an answer are read. The URL is a secret (Slack's carry a token): no message names it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::{Message, SendError, text};
use crate::config::{WebhookConfig, WebhookFormat};
use crate::domain::EventType;

/// The most bytes of a receiver's answer read (for the history's message).
pub const ANSWER_LIMIT: usize = 4096;

/// One configured webhook.
pub struct Webhook {
    /// Its name, the types it takes, its format and timeout.
    config: WebhookConfig,
    url: reqwest::Url,
    key: Option<aws_lc_rs::hmac::Key>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL and the key are secrets.
        f.debug_struct("Webhook")
            .field("name", &self.config.name)
            .field("format", &self.config.format)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// The webhook `config` describes.
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let url = reqwest::Url::parse(config.url.expose())
            .map_err(|e| format!("url is not a URL ({e})"))?;
        let key = match &config.secret {
            Some(secret) => Some(signing_key(secret.expose())?),
            None => None,
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("certfleet/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            config: config.clone(),
            url,
            key,
            client,
        })
    }

    /// The webhook's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// `standard` or `slack`.
    pub fn format(&self) -> WebhookFormat {
        self.config.format
    }

    /// Whether it takes events of `kind` (the test event always).
    pub fn wants(&self, kind: EventType) -> bool {
        self.config.wants(kind)
    }

    /// Posts one event; a 2xx answer is success, anything else is refused.
    pub async fn send(&self, message: Message<'_>) -> Result<String, SendError> {
        let body = match self.config.format {
            WebhookFormat::Standard => message.body.to_owned(),
            WebhookFormat::Slack => json!({"text": text::slack(message)}).to_string(),
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(self.config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.key {
            let timestamp = crate::util::clock::now();
            request = request
                .header("webhook-id", message.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", sign(key, message.id, timestamp, &body));
        }
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Unreachable(describe(&e)))?;
        let status = response.status();
        let answer = read_answer(&mut response).await;
        if status.is_success() {
            Ok(format!("HTTP {}", status.as_u16()))
        } else if status.is_redirection() {
            Err(SendError::Refused(format!(
                "HTTP {} (a redirect, not followed: configure the final URL)",
                status.as_u16()
            )))
        } else {
            Err(SendError::Refused(format!(
                "HTTP {}{}",
                status.as_u16(),
                if answer.is_empty() {
                    String::new()
                } else {
                    format!(": {answer}")
                }
            )))
        }
    }
}

/// The HMAC key of a `whsec_<base64>` secret.
fn signing_key(secret: &str) -> Result<aws_lc_rs::hmac::Key, String> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or("secret does not start with whsec_")?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| "secret is not whsec_ followed by base64".to_owned())?;
    Ok(aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        &bytes,
    ))
}

/// `v1,<base64 of HMAC-SHA256("id.timestamp.body")>`.
pub fn sign(key: &aws_lc_rs::hmac::Key, id: &str, timestamp: i64, body: &str) -> String {
    let mut context = aws_lc_rs::hmac::Context::with_key(key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// The start of the receiver's answer as one short line of text.
async fn read_answer(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ANSWER_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(ANSWER_LIMIT);
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

/// What went wrong with a request, without its URL (which may carry a token).
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification: this secret, id, timestamp and
        // body sign to this value.
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a secret");
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_secret_without_its_prefix_is_refused() {
        assert!(signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(signing_key("whsec_not base64!").is_err());
    }
}
