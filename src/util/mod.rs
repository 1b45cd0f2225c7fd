//! Small pieces with no knowledge of certfleet's subsystems: the clock, crash-test failpoints,
//! durations and sizes as config values write them, a map bounded by the
//! bytes it holds.

pub mod clock;
pub mod duration;
pub mod failpoint;
/// The DER certificates, private key and DNS names that PEM certificate material holds.
pub mod pem;
pub mod size;
pub mod sized_cache;
