//! When a certificate should be renewed, as a pure function of the certificate.
//!
//! The background renewal worker builds on this (see ARCHITECTURE.md); until it runs, a stored
//! certificate is renewed when a client asks for it after it expired, or through
//! `POST /api/certificate/renew`.

/// The renewal time: two thirds into the validity period, so one third of the lifetime is left
/// to retry in. Scales from 6-day to 90-day certificates, unlike a fixed "30 days before".
pub fn renewal_time(not_before: i64, not_after: i64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    not_before + lifetime * 2 / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thirds_of_the_lifetime() {
        let day = 86_400;
        let cases = [
            (0, 90 * day, 60 * day),
            (1_000, 1_000 + 6 * day, 1_000 + 4 * day),
            (500, 620, 580),
            (100, 50, 100),
        ];
        for (not_before, not_after, want) in cases {
            assert_eq!(
                renewal_time(not_before, not_after),
                want,
                "{not_before}..{not_after}"
            );
        }
    }
}
