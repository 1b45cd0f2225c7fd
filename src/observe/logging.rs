//! Log lines: human-readable text or one JSON object per line (`log.format`), filtered by
//! `log.level` unless `RUST_LOG` is set. Spans carry the request id, so every line a request
//! causes names it (see [`crate::observe`]).

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::audit;
use crate::config::{LogConfig, LogFormat};

/// Installs the process's logger, writing to stderr. Call once, before anything logs.
pub fn init(config: &LogConfig) {
    init_with_writer(config, std::io::stderr);
}

/// [`init`] with another destination (benchmarks log to a sink: the formatting is paid for,
/// the terminal is spared).
///
/// Plain output (JSON, or text without colours) also goes to the audit line's fast path
/// ([`audit`]), which writes its lines to the same destination in the same format.
pub fn init_with_writer<W>(config: &LogConfig, writer: W)
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|value| EnvFilter::try_new(value).is_ok())
        .unwrap_or_else(|| config.level.clone());
    let filter = filter(&directives);
    // Colours only for a person at a terminal: log collectors get plain text.
    let colours =
        config.format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logger = subscriber(config.format, colours, filter, writer.clone());
    let installed = tracing::subscriber::set_global_default(logger);
    if installed.is_ok() && !colours {
        audit::write_directly(
            config.format,
            Box::new(move |line| {
                // As the logger does: one write per line, and a failed write loses only it.
                let _ = writer.make_writer().write_all(line);
            }),
        );
    }
}

/// The filter of `directives` (`log.level` or `RUST_LOG`, already checked). Directives by
/// target and level only, the usual case, are a [`Targets`] filter: it decides once per
/// callsite. Only directives that name spans or fields (`certfleet[request{id=x}]=debug`) need an
/// [`EnvFilter`], which also looks at every span as it is entered and left: on every request.
pub(super) fn filter(directives: &str) -> Box<dyn Layer<Registry> + Send + Sync> {
    // `Targets` would read a span directive's `[...]` as part of a target name.
    if !directives.contains(['[', '{'])
        && let Ok(targets) = directives.parse::<Targets>()
    {
        return Box::new(targets);
    }
    Box::new(EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info")))
}

/// The logger [`init`] installs: `format`, with `colours` or not, lines through `filter`,
/// written with `writer`. (The audit line's tests compare its fast path against this.)
pub(super) fn subscriber<W>(
    format: LogFormat,
    colours: bool,
    filter: Box<dyn Layer<Registry> + Send + Sync>,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filtered = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => Box::new(filtered.with(layer.with_ansi(colours))),
        // Event fields at the top level, and the request's span (its id) on every line.
        LogFormat::Json => Box::new(
            filtered.with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .fmt_fields(JsonSpanFields),
            ),
        ),
    }
}

/// Span fields for the JSON format: the object the JSON formatter reads back when it puts the
/// span on a line, written straight into the span's field text. What `JsonFields` writes, and
/// read back the same (the formatter parses it), without a map and a JSON value per field:
/// every request opens a span.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct JsonSpanFields;

impl<'w> FormatFields<'w> for JsonSpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut object = JsonObject {
            out: &mut writer,
            empty: true,
        };
        fields.record(&mut object);
        object.close()
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // Reopen the object: the new fields go before its `}` (an empty one is written anew).
        let empty = match current.fields.pop() {
            Some('}') if current.fields.len() > 1 => false,
            Some('}') | None => {
                current.fields.clear();
                true
            }
            Some(other) => {
                current.fields.push(other);
                return Err(fmt::Error);
            }
        };
        let mut object = JsonObject {
            out: &mut current.fields,
            empty,
        };
        fields.record(&mut object);
        object.close()
    }
}

/// Writes visited fields as the members of one JSON object.
struct JsonObject<'a, W: fmt::Write + ?Sized> {
    out: &'a mut W,
    /// No member written yet (`{` not written either).
    empty: bool,
}

impl<W: fmt::Write + ?Sized> JsonObject<'_, W> {
    fn member(&mut self, name: &str) {
        let _ = self.out.write_char(if self.empty { '{' } else { ',' });
        self.empty = false;
        audit::json_string(self.out, name.strip_prefix("r#").unwrap_or(name));
        let _ = self.out.write_char(':');
    }

    fn close(self) -> fmt::Result {
        self.out.write_str(if self.empty { "{}" } else { "}" })
    }
}

impl<W: fmt::Write + ?Sized> Visit for JsonObject<'_, W> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field.name());
        // As serde_json: a number, or null when it is not finite.
        let _ = match serde_json::Number::from_f64(value) {
            Some(number) => write!(self.out, "{number}"),
            None => self.out.write_str("null"),
        };
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field.name());
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field.name());
        let _ = write!(self.out, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field.name());
        let _ = write!(self.out, "{value}");
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field.name());
        audit::json_string(self.out, value);
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.member(field.name());
        let _ = self.out.write_char('[');
        for (i, byte) in value.iter().enumerate() {
            let _ = write!(self.out, "{}{byte}", if i > 0 { "," } else { "" });
        }
        let _ = self.out.write_char(']');
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field.name());
        let _ = self.out.write_char('"');
        let _ = write!(Escaping(&mut *self.out), "{value:?}");
        let _ = self.out.write_char('"');
    }
}

/// Escapes what is written through it as the inside of a JSON string.
struct Escaping<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        audit::json_escaped(self.0, text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing::subscriber::with_default;

    use super::*;

    /// Both kinds of filter let through what the directives say, and nothing else: a span
    /// directive still selects lines by span.
    #[test]
    fn target_directives_and_span_directives_both_filter() {
        // directives, then whether each line shows: certfleet debug outside a span, inside the
        // request span, hyper debug, hyper info, certfleet warn.
        for (directives, want) in [
            ("info,certfleet=debug", [true, true, false, true, true]),
            ("warn", [false, false, false, false, true]),
            (
                "info,certfleet[request]=debug",
                [false, true, false, true, true],
            ),
        ] {
            let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let writer = {
                let sink = sink.clone();
                move || Capture(sink.clone())
            };
            let logger = subscriber(LogFormat::Text, false, filter(directives), writer);
            with_default(logger, || {
                tracing::debug!(target: "certfleet::acme", "line-0");
                tracing::info_span!(target: "certfleet", "request", id = 1)
                    .in_scope(|| tracing::debug!(target: "certfleet::acme", "line-1"));
                tracing::debug!(target: "hyper", "line-2");
                tracing::info!(target: "hyper", "line-3");
                tracing::event!(target: "certfleet", Level::WARN, "line-4");
            });
            let text = String::from_utf8(sink.lock().expect("sink").clone()).expect("UTF-8");
            for (i, shown) in want.into_iter().enumerate() {
                assert_eq!(
                    text.contains(&format!("line-{i}")),
                    shown,
                    "{directives}, line {i}: {text}"
                );
            }
        }
    }

    /// Lines in spans with every kind of field, some recorded later, read the same with the
    /// JSON formatter's own span fields and with ours.
    #[test]
    fn json_span_fields_read_as_the_formatters_own() {
        fn lines(ours: bool) -> Vec<serde_json::Value> {
            let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let writer = {
                let sink = sink.clone();
                move || Capture(sink.clone())
            };
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true);
            let registry = tracing_subscriber::registry();
            let logger: Box<dyn tracing::Subscriber + Send + Sync> = if ours {
                Box::new(registry.with(layer.fmt_fields(JsonSpanFields)))
            } else {
                Box::new(registry.with(layer))
            };
            with_default(logger, || {
                let quoted = "a \"quoted\" \\ value\n\u{1}";
                let outer = tracing::info_span!("outer", id = %quoted, n = -3_i64, big = u64::MAX,
                    yes = true, ratio = 0.25_f64, nan = f64::NAN, text = "plain", r#type = "raw",
                    dbg = ?vec!["x", "y"], later = tracing::field::Empty);
                outer.record("later", 7_u64);
                let _outer = outer.enter();
                tracing::info!(k = 1, "in outer");
                let empty = tracing::info_span!("empty");
                let _empty = empty.enter();
                tracing::info!("in empty");
                let filled = tracing::info_span!("filled", a = tracing::field::Empty);
                filled.record("a", "first");
                filled.record("a", "second");
                let _filled = filled.enter();
                tracing::info!("in filled");
            });
            let text = String::from_utf8(sink.lock().expect("sink").clone()).expect("UTF-8");
            text.lines()
                .map(|line| {
                    let mut value: serde_json::Value = serde_json::from_str(line).expect("JSON");
                    value
                        .as_object_mut()
                        .expect("an object")
                        .remove("timestamp");
                    value
                })
                .collect()
        }
        let (theirs, ours) = (lines(false), lines(true));
        assert_eq!(theirs.len(), 3, "{theirs:?}");
        assert_eq!(ours, theirs);
        assert_eq!(ours[0]["span"]["id"], "a \"quoted\" \\ value\n\u{1}");
        assert_eq!(ours[0]["span"]["later"], 7);
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
