//! Log lines: human-readable text or one JSON object per line (`log.format`), filtered by
//! `log.level` unless `RUST_LOG` is set. Spans carry the request id, so every line a request
//! causes names it (see [`crate::observe`]).

use std::io::Write as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
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

/// The logger [`init`] installs: `format`, with `colours` or not, lines through `filter`,
/// written with `writer`. (The audit line's tests compare its fast path against this.)
pub(super) fn subscriber<W>(
    format: LogFormat,
    colours: bool,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(colours).finish()),
        // Event fields at the top level, and the request's span (its id) on every line.
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}
