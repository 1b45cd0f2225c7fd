//! Wall-clock time as Unix seconds: the one place the service reads the clock, so that the
//! scheduling functions elsewhere take time as an input.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in whole Unix seconds.
pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Formats Unix seconds as RFC 3339 (`2026-11-22T05:11:46Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Reads an RFC 3339 time (as [`rfc3339`] writes it, any offset) as Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// `at` relative to `now`, as people say it: "in 23 days", "2 hours ago", "now" (days from
/// two days on, hours from one hour, minutes below).
pub fn relative(at: i64, now: i64) -> String {
    let delta = at - now;
    let span = delta.unsigned_abs();
    let (count, unit) = match span {
        0..60 => return "now".to_owned(),
        60..3_600 => (span / 60, "minute"),
        3_600..172_800 => (span / 3_600, "hour"),
        _ => (span / 86_400, "day"),
    };
    let plural = if count == 1 { "" } else { "s" };
    if delta > 0 {
        format!("in {count} {unit}{plural}")
    } else {
        format!("{count} {unit}{plural} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_people_say_them() {
        let now = 1_800_000_000;
        assert_eq!(relative(now + 23 * 86_400 + 100, now), "in 23 days");
        assert_eq!(relative(now + 86_400, now), "in 24 hours");
        assert_eq!(relative(now + 3 * 86_400, now), "in 3 days");
        assert_eq!(relative(now - 7_200, now), "2 hours ago");
        assert_eq!(relative(now + 90, now), "in 1 minute");
        assert_eq!(relative(now + 10, now), "now");
    }

    #[test]
    fn reads_rfc3339_back() {
        assert_eq!(parse_rfc3339("2026-11-18T11:06:40Z"), Some(1_795_000_000));
        assert_eq!(
            parse_rfc3339("2026-11-18T12:06:40+01:00"),
            Some(1_795_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
