//! Email (`notifications.email`): one plain-text message per event, through SMTP with lettre on
//! rustls (STARTTLS or implicit TLS; plain only to a loopback relay, which the config checks).
//!
//! The subject and body come from `text.rs`; the `Message-ID` is the event id, so a mail
//! sent twice (a process died after the server took it) reads as the same message. The
//! recipients are `to`, or `toByEvent`'s list for the event's type.

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::{Message, SendError, text};
use crate::config::{EmailConfig, SmtpTls};
use crate::domain::EventType;

/// The configured SMTP relay and addresses.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Its recipients and the types it takes.
    config: EmailConfig,
    /// The relay, for messages: `host:port`.
    relay: String,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl Email {
    /// The channel `config` describes; fails on an address lettre cannot parse or an
    /// unreadable `caCertificates` file.
    pub fn new(config: &EmailConfig) -> Result<Self, String> {
        let mailbox = |key: &str, text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| format!("{key} \"{text}\" is not an email address: {e}"))
        };
        let from = mailbox("from", &config.from)?;
        // Every recipient is checked now, so a bad address stops the start, not a mail.
        for address in &config.to {
            mailbox("to", address)?;
        }
        for (kind, addresses) in &config.to_by_event {
            for address in addresses {
                mailbox(&format!("toByEvent.{kind}"), address)?;
            }
        }
        let mut tls = TlsParameters::builder(config.host.clone());
        if let Some(path) = &config.ca_certificates {
            let pem = std::fs::read(path)
                .map_err(|e| format!("caCertificates {}: {e}", path.display()))?;
            let roots = Certificate::from_pem(&pem)
                .map_err(|e| format!("caCertificates {}: {e}", path.display()))?;
            tls = tls.add_root_certificate(roots);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| format!("cannot set up TLS for {}: {e}", config.host))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(config.timeout))
            .tls(match config.tls {
                SmtpTls::StartTls => Tls::Required(tls),
                SmtpTls::Implicit => Tls::Wrapper(tls),
                SmtpTls::None => Tls::None,
            });
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            config: config.clone(),
            relay: format!("{}:{}", config.host, config.port),
        })
    }

    /// Whether it takes events of `kind` (the test event always).
    pub fn wants(&self, kind: EventType) -> bool {
        self.config.wants(kind)
    }

    /// Sends one event to its recipients.
    pub async fn send(&self, message: Message<'_>) -> Result<String, SendError> {
        let recipients = self.config.recipients(message.kind);
        if recipients.is_empty() {
            return Err(SendError::Misconfigured(format!(
                "no recipient for {}: add one to to or toByEvent",
                message.kind
            )));
        }
        let text = text::describe(message);
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(text.subject)
            .message_id(Some(format!("<{}@certfleet>", message.id)))
            .header(ContentType::TEXT_PLAIN);
        for recipient in recipients {
            let mailbox = recipient.parse::<Mailbox>().map_err(|e| {
                SendError::Misconfigured(format!("\"{recipient}\" is not an email address: {e}"))
            })?;
            builder = builder.to(mailbox);
        }
        let mail = builder
            .body(text.body)
            .map_err(|e| SendError::Misconfigured(format!("cannot build the message: {e}")))?;
        match self.transport.send(mail).await {
            Ok(response) => Ok(format!("{} accepted it ({})", self.relay, response.code())),
            Err(err) if err.is_permanent() || err.is_transient() => Err(SendError::Refused(
                format!("{} refused it: {err}", self.relay),
            )),
            Err(err) => Err(SendError::Unreachable(format!("{}: {err}", self.relay))),
        }
    }
}
