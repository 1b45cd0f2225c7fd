//! Durations in messages, written the way certfleet's config reads them (`90s`, `15m1s`, `1h`),
//! so a lifetime a message names can be pasted into a config or a `--lifetime` flag.

use std::fmt::Write as _;
use std::time::Duration;

/// Below this, seconds read better than minutes and seconds (`90s`, not `1m30s`).
const SECONDS_BELOW: u64 = 300;

/// `0`, `500ms`, `90s`, `15m1s`, `2d3h`: seconds alone under five minutes, longer values in
/// days, hours, minutes and seconds, largest first; milliseconds only when there are some.
pub(crate) fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0".to_owned();
    }
    let mut out = String::new();
    let mut secs = duration.as_secs();
    if secs >= SECONDS_BELOW {
        for (unit, length) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if secs >= length {
                // Writing to a String cannot fail.
                let _ = write!(out, "{}{unit}", secs / length);
                secs %= length;
            }
        }
    }
    if secs > 0 {
        let _ = write!(out, "{secs}s");
    }
    let millis = duration.subsec_millis();
    if millis > 0 || out.is_empty() {
        let _ = write!(out, "{millis}ms");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_the_config_writes_durations() {
        for (duration, text) in [
            (Duration::ZERO, "0"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(299), "299s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(900), "15m"),
            (Duration::from_secs(901), "15m1s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(2 * 86_400 + 3 * 3600), "2d3h"),
        ] {
            assert_eq!(format_duration(duration), text, "{duration:?}");
        }
    }
}
