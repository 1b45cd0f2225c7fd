//! Durations in config values: `90s`, `15m`, `1h30m`, `500ms`, `2d`, and `0`.

use std::time::Duration;

/// What a malformed duration's error message suggests instead.
const EXAMPLES: &str = "write durations like 90s, 15m, 1h30m, 500ms or 2d (or 0 for none)";

/// Parses a duration written as one or more `<integer><unit>` parts (`ms`, `s`, `m`, `h`, `d`),
/// such as `1h30m`, or `0` for zero.
///
/// A bare number other than `0` is refused rather than read as seconds: `60` could as well mean
/// minutes, and a config value that silently means something else is worse than an error.
/// The error message quotes the input and says how to write it.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let problem = |kind| DurationError {
        input: input.to_owned(),
        kind,
    };
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    if input.is_empty() {
        return Err(problem(Problem::Empty));
    }
    if input.starts_with('-') {
        return Err(problem(Problem::Negative));
    }
    if input.contains('.') {
        return Err(problem(Problem::Fraction));
    }
    let mut total = Duration::ZERO;
    let mut rest = input;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if digits.is_empty() {
            return Err(problem(Problem::NotADuration));
        }
        if unit.is_empty() {
            return Err(problem(Problem::NoUnit));
        }
        let count: u32 = digits.parse().map_err(|_| problem(Problem::TooLarge))?;
        let part = unit_length(unit)
            .ok_or_else(|| problem(Problem::UnknownUnit(unit.to_owned())))?
            .checked_mul(count)
            .ok_or_else(|| problem(Problem::TooLarge))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| problem(Problem::TooLarge))?;
        rest = next;
    }
    Ok(total)
}

/// Why a duration was refused: the input (a config value, never a secret) and what is wrong.
/// Its message quotes the input and says how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct DurationError {
    input: String,
    kind: Problem,
}

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    Empty,
    Negative,
    Fraction,
    NotADuration,
    NoUnit,
    UnknownUnit(String),
    TooLarge,
}

impl DurationError {
    fn message(&self) -> String {
        let input = &self.input;
        match &self.kind {
            Problem::Empty => format!("the duration is empty; {EXAMPLES}"),
            Problem::Negative => format!("\"{input}\" is negative; {EXAMPLES}"),
            Problem::Fraction => {
                format!("\"{input}\" has a fraction; use a smaller unit instead (1h30m, not 1.5h)")
            }
            Problem::NotADuration => format!("\"{input}\" is not a duration; {EXAMPLES}"),
            Problem::NoUnit => format!("\"{input}\" has no unit; {EXAMPLES}"),
            Problem::UnknownUnit(unit) => {
                format!("\"{input}\" has an unknown unit \"{unit}\"; {EXAMPLES}")
            }
            Problem::TooLarge => format!("\"{input}\" is too large; {EXAMPLES}"),
        }
    }
}

/// Formats a duration the way [`parse_duration`] reads it, so `check-config` prints values a
/// user can paste back into the file: `0`, `500ms`, `60s`, `15m`, `1h30m`, `2d`.
///
/// Under five minutes the value is given in seconds (`60s`, `90s`), as timeouts are usually
/// written; longer values are split into days, hours, minutes and seconds, largest first.
pub fn format_duration(duration: Duration) -> String {
    /// Below this, seconds read better than `1m30s`.
    const SECONDS_BELOW: u64 = 300;
    if duration.is_zero() {
        return "0".to_owned();
    }
    let mut secs = duration.as_secs();
    let mut parts = Vec::new();
    if secs >= SECONDS_BELOW {
        for (unit, length) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if secs >= length {
                parts.push(format!("{}{unit}", secs / length));
                secs %= length;
            }
        }
    }
    if secs > 0 {
        parts.push(format!("{secs}s"));
    }
    let millis = duration.subsec_millis();
    if millis > 0 || parts.is_empty() {
        parts.push(format!("{millis}ms"));
    }
    parts.concat()
}

/// The length of one unit, or `None` for a unit this format does not know.
fn unit_length(unit: &str) -> Option<Duration> {
    match unit {
        "ms" => Some(Duration::from_millis(1)),
        "s" => Some(Duration::from_secs(1)),
        "m" => Some(Duration::from_secs(60)),
        "h" => Some(Duration::from_secs(3_600)),
        "d" => Some(Duration::from_secs(86_400)),
        _ => None,
    }
}
