//! The audit line: one per response that carries a private key (who, which certificate, from
//! where, the request id; never the key), target [`AUDIT_TARGET`], level INFO.
//!
//! It is a log line like any other, filtered by `log.level` / `RUST_LOG` like any other, but it is
//! written on every certificate fetch, so it has a fast path: once [`super::logging`] has
//! installed the process's logger with plain output (JSON, or text without colours), the line is
//! formatted here, directly into a per-thread buffer, and written to the logger's destination in
//! one write, byte for byte as the logger would have written it (the unit tests hold the two
//! side by side). Without that (colours on a terminal, no logger of ours, an embedding program's
//! subscriber) it is a `tracing` event, as every other line.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::config::LogFormat;
use crate::domain::NameSet;

/// The audit log's target: filter on it to route audit lines (`certfleet::audit=info`).
pub const AUDIT_TARGET: &str = "certfleet::audit";

/// The message of every audit line.
const MESSAGE: &str = "private key delivered";

/// One audit line's fields.
#[derive(Debug, Clone, Copy)]
pub struct AuditLine<'a> {
    /// The principal's name (the PSK's name, the token's subject, the Akash address).
    pub principal: &'a str,
    /// The method that authenticated it: `psk`, `jwt` or `akash`.
    pub method: &'static str,
    /// The certificate's names.
    pub names: &'a NameSet,
    /// The certificate's key type.
    pub key_type: &'a str,
    /// The certificate's serial, lowercase hex.
    pub serial: &'a str,
    /// The client's address, when known.
    pub remote: Option<SocketAddr>,
    /// The request's id (also the id of the `request` span the line is written in).
    pub request_id: &'a str,
}

/// Writes one whole line to the logger's destination.
pub type WriteLine = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The logger's format and destination, for the fast path.
struct Direct {
    format: LogFormat,
    write: WriteLine,
}

static DIRECT: OnceLock<Direct> = OnceLock::new();

thread_local! {
    /// The line being formatted: kept per thread, so a line costs no allocation.
    static BUF: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Called by [`super::logging`] once it has installed the process's logger, writing `format`
/// without colours through `write`: audit lines are formatted here from then on.
pub fn write_directly(format: LogFormat, write: WriteLine) {
    let _ = DIRECT.set(Direct { format, write });
}

/// Writes the audit line, if the log filter lets INFO lines of [`AUDIT_TARGET`] through;
/// `request` is the request's span, which a `tracing` event is written in.
pub fn record(request: &tracing::Span, line: &AuditLine<'_>) {
    if !tracing::enabled!(target: AUDIT_TARGET, tracing::Level::INFO) {
        return;
    }
    let Some(direct) = DIRECT.get() else {
        request.in_scope(|| emit(line));
        return;
    };
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        format_line(buf, direct.format, SystemTime::now(), line);
        (direct.write)(buf.as_bytes());
    });
}

/// The line as a `tracing` event, for any subscriber.
fn emit(line: &AuditLine<'_>) {
    tracing::info!(
        target: AUDIT_TARGET,
        principal = %line.principal,
        method = line.method,
        names = %line.names,
        key_type = line.key_type,
        serial = %line.serial,
        remote = %Remote(line.remote),
        request_id = %line.request_id,
        "{MESSAGE}"
    );
}

/// Appends the line, newline included, as the logger formats it: text is
/// `<time>  INFO request{id=<id>}: certfleet::audit: private key delivered principal=... ...`,
/// JSON is one object with the event's fields at the top level and the request's span.
fn format_line(buf: &mut String, format: LogFormat, now: SystemTime, line: &AuditLine<'_>) {
    // Writing into a String cannot fail.
    match format {
        LogFormat::Text => {
            write_time(buf, now);
            buf.push_str("  INFO request{id=");
            buf.push_str(line.request_id);
            buf.push_str("}: ");
            buf.push_str(AUDIT_TARGET);
            buf.push_str(": ");
            buf.push_str(MESSAGE);
            buf.push_str(" principal=");
            buf.push_str(line.principal);
            // `&str` fields are written as `Debug`: quoted (these two never need escapes).
            buf.push_str(" method=\"");
            buf.push_str(line.method);
            buf.push_str("\" names=");
            let _ = write!(buf, "{}", line.names);
            buf.push_str(" key_type=\"");
            buf.push_str(line.key_type);
            buf.push_str("\" serial=");
            buf.push_str(line.serial);
            buf.push_str(" remote=");
            write_remote(buf, line.remote);
            buf.push_str(" request_id=");
            buf.push_str(line.request_id);
        }
        LogFormat::Json => {
            buf.push_str("{\"timestamp\":\"");
            write_time(buf, now);
            buf.push_str("\",\"level\":\"INFO\",\"message\":\"");
            buf.push_str(MESSAGE);
            buf.push_str("\",\"principal\":");
            json_string(buf, line.principal);
            buf.push_str(",\"method\":");
            json_string(buf, line.method);
            buf.push_str(",\"names\":\"");
            // DNS names in A-label form: nothing to escape.
            let _ = write!(buf, "{}", line.names);
            buf.push_str("\",\"key_type\":");
            json_string(buf, line.key_type);
            buf.push_str(",\"serial\":");
            json_string(buf, line.serial);
            buf.push_str(",\"remote\":\"");
            write_remote(buf, line.remote);
            buf.push('"');
            buf.push_str(",\"request_id\":");
            json_string(buf, line.request_id);
            buf.push_str(",\"target\":\"");
            buf.push_str(AUDIT_TARGET);
            buf.push_str("\",\"span\":{\"id\":");
            json_string(buf, line.request_id);
            buf.push_str(",\"name\":\"request\"}}");
        }
    }
    buf.push('\n');
}

/// The client's address as the line shows it.
struct Remote(Option<SocketAddr>);

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(address) => address.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// `value` as a JSON string, as serde_json writes it: `"` and `\` escaped, control characters
/// as `\n`-style or `\u00XX` escapes, everything else as it is. Also used for the JSON logger's
/// span fields ([`super::logging`]).
pub(super) fn json_string<W: std::fmt::Write + ?Sized>(out: &mut W, value: &str) {
    let _ = out.write_char('"');
    json_escaped(out, value);
    let _ = out.write_char('"');
}

/// `value`'s characters as they appear inside a JSON string: runs that need no escape (nearly
/// always the whole value) are written at once.
pub(super) fn json_escaped<W: std::fmt::Write + ?Sized>(out: &mut W, value: &str) {
    // Nearly every value needs no escape: a test the compiler vectorises, then one write.
    if !value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        let _ = out.write_str(value);
        return;
    }
    let mut run = 0;
    for (at, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        let _ = out.write_str(&value[run..at]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            let _ = out.write_str(escape);
        }
        run = at + 1;
    }
    let _ = out.write_str(&value[run..]);
}

/// `now` as the logger writes it: RFC 3339 in UTC with microseconds,
/// `2026-12-03T06:57:24.267905Z`. The part up to the seconds is formatted once a second.
fn write_time(buf: &mut String, now: SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            let (year, month, day) = civil_from_days(secs / 86_400);
            let of_day = secs % 86_400;
            text.clear();
            let _ = write!(
                text,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60,
            );
            *cached = secs;
        }
        buf.push_str(text);
    });
    buf.push('.');
    push_digits(buf, since.subsec_micros(), 6);
    buf.push('Z');
}

/// `value` in decimal, zero-padded to `width` digits (`width` at most 10).
fn push_digits(buf: &mut String, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = value;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    let start = digits.len() - width.clamp(1, 10);
    // A zero-padded number cannot be shorter than its digits: widen when needed.
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len() - 1);
    for &digit in &digits[start.min(first)..] {
        buf.push(char::from(digit));
    }
}

/// The client's address as `SocketAddr`'s `Display` writes it (IPv4 without `fmt` machinery),
/// or `unknown`.
fn write_remote(buf: &mut String, remote: Option<SocketAddr>) {
    match remote {
        Some(SocketAddr::V4(v4)) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push('.');
                }
                push_digits(buf, u32::from(octet), 1);
            }
            buf.push(':');
            push_digits(buf, u32::from(v4.port()), 1);
        }
        Some(other) => {
            let _ = write!(buf, "{other}");
        }
        None => buf.push_str("unknown"),
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A writer that keeps what the logger writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            )
            .expect("UTF-8")
        }
    }

    /// What the process's logger (the one `logging` installs) writes for the `tracing` event.
    fn through_the_logger(format: LogFormat, line: &AuditLine<'_>) -> String {
        let captured = Captured::default();
        let logger = super::super::logging::subscriber(
            format,
            false,
            super::super::logging::filter("info"),
            captured.clone(),
        );
        let dispatch = tracing::Dispatch::new(logger);
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("request", id = %line.request_id);
            span.in_scope(|| emit(line));
        });
        captured.text()
    }

    /// The line without its time (the two are written microseconds apart), which comes first.
    fn timeless(format: LogFormat, line: &str) -> &str {
        let rest = match format {
            LogFormat::Text => line.split_once(' ').map(|(_, rest)| rest),
            LogFormat::Json => line
                .strip_prefix("{\"timestamp\":\"")
                .and_then(|rest| rest.find("\",\"level\"").map(|at| &rest[at..])),
        };
        rest.unwrap_or_else(|| panic!("no time first: {line}"))
    }

    fn names() -> NameSet {
        NameSet::parse(&["www.example.com", "example.com"]).expect("names")
    }

    #[test]
    fn the_fast_line_is_the_line_the_logger_writes() {
        let names = names();
        let remote = "192.0.2.7:41234".parse().expect("address");
        let principals = [
            "fleet-a",
            "akash1qy352eufqy352eufqy352eufqy352euf",
            "quote\"back\\slash",
        ];
        for format in [LogFormat::Text, LogFormat::Json] {
            for (principal, remote) in principals.iter().zip([Some(remote), None, Some(remote)]) {
                let line = AuditLine {
                    principal,
                    method: "psk",
                    names: &names,
                    key_type: "ecdsa-p256",
                    serial: "5a173c019e428b6d",
                    remote,
                    request_id: "client-chosen-42",
                };
                let logger = through_the_logger(format, &line);
                let mut fast = String::new();
                format_line(&mut fast, format, SystemTime::now(), &line);
                assert!(fast.ends_with('\n') && logger.ends_with('\n'));
                assert_eq!(
                    timeless(format, &fast),
                    timeless(format, &logger),
                    "{format:?}\nfast:   {fast}logger: {logger}"
                );
            }
        }
    }

    #[test]
    fn times_are_written_as_the_logger_writes_them() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.000005Z"),
            (1_796_366_244, 267_905, "2026-12-04T06:37:24.267905Z"),
            (4_102_444_799, 999_999, "2099-12-31T23:59:59.999999Z"),
        ];
        for (secs, micros, expected) in cases {
            let at =
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            let mut ours = String::new();
            write_time(&mut ours, at);
            assert_eq!(ours, expected);
            let theirs = time::OffsetDateTime::from(at)
                .format(&time::format_description::well_known::Rfc3339)
                .expect("format");
            assert_eq!(ours.get(..19), theirs.get(..19), "{theirs}");
        }
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for value in [
            "plain",
            "quote\"",
            "back\\slash",
            "tab\tnew\nline\r",
            "\u{1}\u{1f}",
            "\u{8}\u{c}\u{7f}x",
            "ünï",
            "",
        ] {
            let mut ours = String::new();
            json_string(&mut ours, value);
            assert_eq!(
                ours,
                serde_json::to_string(value).expect("JSON"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn addresses_and_numbers_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0:0",
            "127.0.0.1:41234",
            "255.255.255.255:65535",
            "10.20.30.40:8",
            "[::1]:443",
            "[2001:db8::7]:65535",
        ] {
            let address: SocketAddr = text.parse().expect("address");
            let mut ours = String::new();
            write_remote(&mut ours, Some(address));
            assert_eq!(ours, address.to_string());
        }
        let mut unknown = String::new();
        write_remote(&mut unknown, None);
        assert_eq!(unknown, "unknown");
        for (value, width, expected) in [
            (0, 6, "000000"),
            (5, 6, "000005"),
            (999_999, 6, "999999"),
            (0, 1, "0"),
            (4_294_967_295, 1, "4294967295"),
        ] {
            let mut ours = String::new();
            push_digits(&mut ours, value, width);
            assert_eq!(ours, expected);
        }
    }
}
