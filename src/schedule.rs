//! Renewal scheduling, as pure functions of the certificate, the time and a random draw: when a
//! certificate is due (two thirds of its lifetime, or a point in the CA's ARI window), the random
//! draw that spreads renewals, and how long a failing certificate waits. The ACME flow, the
//! certificate service and the renewal worker all call down into this module.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// The renewal time: when one third of the lifetime is left, brought forward by up to a
/// fifteenth of the lifetime (`jitter` in [0, 1)) so certificates issued together do not renew
/// together. Scales from 6-day to 90-day certificates, unlike a fixed "30 days before".
pub fn renewal_time(not_before: i64, not_after: i64, jitter: f64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    let spread = lifetime / 15;
    // The product is within [0, spread]: the cast cannot overflow or lose a sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let early = (spread as f64 * jitter.clamp(0.0, 1.0)) as i64;
    not_before + lifetime * 2 / 3 - early
}

/// A uniform draw in [0, 1) from the system's random source (0 if it fails).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// How long to wait after the `failures`-th consecutive failure before ordering again.
///
/// Doubles from a base (5 minutes before a first certificate exists, so a fixed DNS record is
/// retried soon; 1 hour for renewals, as cert-manager does), capped at 32 hours, and, while a
/// certificate is still valid, never more than a tenth of its remaining lifetime (at least 10
/// seconds), so a short certificate is retried before it expires. `remaining` is the current
/// certificate's remaining lifetime in seconds, `None` when there is none.
pub fn backoff(failures: u32, remaining: Option<i64>) -> i64 {
    const CAP: i64 = 32 * 3600;
    let base = if remaining.is_some() { 3600 } else { 300 };
    let doublings = failures.saturating_sub(1).min(20);
    let wait = (base << doublings).min(CAP);
    match remaining {
        Some(left) if left > 0 => wait.min((left / 10).max(10)),
        _ => wait,
    }
}

/// How often the CA's renewal window (ARI) of a certificate not yet due is asked again: a tenth
/// of its lifetime, at most 6 hours (RFC 9773 leaves it to the client; 6 hours is what Let's
/// Encrypt suggests), at least a second. A CA that moves a window earlier (before a mass
/// revocation) is noticed within that.
pub fn ari_check_interval(not_before: i64, not_after: i64) -> i64 {
    ((not_after - not_before) / 10).clamp(1, 6 * 3600)
}

/// How long a notification waits after its `attempts`-th failed delivery: `initial`
/// (`notifications.retryInitial`, a minute by default), doubling with each failure, at most
/// `max` (`notifications.retryMax`, a day).
pub fn notification_retry(attempts: u32, initial: i64, max: i64) -> i64 {
    let doublings = attempts.saturating_sub(1).min(40);
    initial
        .max(1)
        .saturating_mul(1_i64 << doublings)
        .min(max.max(initial.max(1)))
}

/// A point in the window `[start, end]` chosen by `draw` in [0, 1): RFC 9773 section 4.2 asks
/// for a uniformly random point; a window already open means "now".
pub fn point_in_window(start: i64, end: i64, now: i64, draw: f64) -> i64 {
    if start <= now {
        return now;
    }
    let width = (end - start).max(0);
    // The product is within [0, width]: the cast cannot overflow or lose a sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let offset = (width as f64 * draw.clamp(0.0, 1.0)) as i64;
    start + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_time_is_two_thirds_minus_jitter() {
        let day = 86_400;
        let cases = [
            (0, 90 * day, 0.0, 60 * day),
            (0, 90 * day, 0.999_999, 60 * day - 6 * day + 1),
            (0, 90 * day, 0.5, 57 * day),
            (1_000, 1_000 + 6 * day, 0.0, 1_000 + 4 * day),
            (500, 620, 0.0, 580),
            (500, 620, 1.0, 572),
            (100, 50, 0.5, 100),
            (0, 90 * day, 7.0, 54 * day),
        ];
        for (not_before, not_after, jitter, want) in cases {
            let got = renewal_time(not_before, not_after, jitter);
            assert!(
                (got - want).abs() <= 1,
                "{not_before}..{not_after} j={jitter}: {got} != {want}"
            );
        }
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let draws: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.windows(2).any(|w| (w[0] - w[1]).abs() > f64::EPSILON));
    }

    #[test]
    fn backoff_table() {
        let hour = 3600;
        let day = 24 * hour;
        let cases = [
            // No certificate yet: from 5 minutes.
            (1, None, 300),
            (2, None, 600),
            (3, None, 1200),
            (20, None, 32 * hour),
            (u32::MAX, None, 32 * hour),
            // Renewal of a 90-day certificate with 30 days left: 1 h, 2 h, ... 32 h.
            (1, Some(30 * day), hour),
            (2, Some(30 * day), 2 * hour),
            (6, Some(30 * day), 32 * hour),
            (7, Some(30 * day), 32 * hour),
            // A 6-day certificate with 2 days left: at most 4.8 h.
            (1, Some(2 * day), hour),
            (4, Some(2 * day), 2 * day / 10),
            // A 2-minute test certificate with 40 s left: 10 s floor.
            (1, Some(40), 10),
            (3, Some(400), 40),
            // Expired: the plain schedule.
            (1, Some(-5), hour),
        ];
        for (failures, remaining, want) in cases {
            assert_eq!(
                backoff(failures, remaining),
                want,
                "{failures} failures, {remaining:?} left"
            );
        }
    }

    #[test]
    fn points_fall_in_the_window() {
        let cases = [
            (1_000, 2_000, 500, 0.0, 1_000),
            (1_000, 2_000, 500, 0.5, 1_500),
            (1_000, 2_000, 500, 0.999, 1_999),
            (1_000, 2_000, 1_200, 0.5, 1_200),
            (1_000, 1_000, 500, 0.7, 1_000),
            (1_000, 900, 500, 0.7, 1_000),
        ];
        for (start, end, now, draw, want) in cases {
            assert_eq!(
                point_in_window(start, end, now, draw),
                want,
                "{start}..{end} now={now} draw={draw}"
            );
        }
    }

    #[test]
    fn notification_retries_double_up_to_their_cap() {
        let waits: Vec<i64> = (1..=6).map(|n| notification_retry(n, 60, 300)).collect();
        assert_eq!(waits, [60, 120, 240, 300, 300, 300]);
        assert_eq!(notification_retry(200, 60, 86_400), 86_400);
        assert_eq!(notification_retry(0, 60, 86_400), 60);
    }

    #[test]
    fn the_ari_window_is_asked_again_every_tenth_of_the_lifetime_at_most_six_hours() {
        assert_eq!(ari_check_interval(0, 90 * 86_400), 6 * 3600);
        assert_eq!(ari_check_interval(0, 30), 3);
        assert_eq!(ari_check_interval(0, 5), 1);
    }
}
