//! Log lines: human-readable text or one JSON object per line (`log.format`), filtered by
//! `log.level` unless `RUST_LOG` is set. Spans carry the request id, so every line a request
//! causes names it (see [`crate::observe`]).

use std::io::Write as _;

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
                    .with_span_list(false),
            ),
        ),
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
