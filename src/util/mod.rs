//! Small pieces with no knowledge of certfleet's subsystems: the clock, crash-test failpoints,
//! durations as config values write them.

pub mod clock;
pub mod duration;
pub mod failpoint;
/// The DER certificates, private key and DNS names that PEM certificate material holds.
pub mod pem;
