//! `log`: the format of log lines and which of them are written.

use serde::Serialize;

use super::{
    raw::RawLog,
    report::{Report, Reported},
};

/// The default `log.level`.
const DEFAULT_LEVEL: &str = "info";

/// `log`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfig {
    /// `log.format`: `text` (default) for people, `json` (one object per line) for collectors.
    pub format: LogFormat,
    /// `log.level`: a tracing filter directive such as `info` or `info,certfleet=debug`
    /// (default `info`). `RUST_LOG`, when set, wins over it.
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: DEFAULT_LEVEL.to_owned(),
        }
    }
}

/// Resolves `log`, checking the level is a filter the logger accepts.
pub(super) fn log(raw: RawLog, report: &mut Report<'_>) -> Result<LogConfig, Reported> {
    let format = match raw.format.as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(report.error(
            "log.format",
            format!("\"{other}\" is not a log format; use text (default) or json"),
        )),
    };
    let level = match raw.level {
        None => Ok(DEFAULT_LEVEL.to_owned()),
        Some(level) => match tracing_subscriber::EnvFilter::try_new(&level) {
            Ok(_) => Ok(level),
            Err(err) => Err(report.error(
                "log.level",
                format!(
                    "\"{level}\" is not a filter directive ({err}); write a level such as info \
                     or debug, optionally with per-module levels: info,certfleet=debug"
                ),
            )),
        },
    };
    Ok(LogConfig {
        format: format?,
        level: level?,
    })
}
