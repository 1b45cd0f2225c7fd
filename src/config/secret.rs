//! [`Secret`]: a string that never prints itself.

use std::fmt;

use serde::{Serialize, Serializer};

/// What every printed form of a secret shows instead of its value.
const REDACTED: &str = "<redacted>";

/// A secret config value (a PSK, an EAB HMAC key, a database URL that may carry a password).
///
/// `Debug`, `Display` and `Serialize` all print `<redacted>`, so a secret can sit in any struct
/// that is logged or printed by `check-config`. There is deliberately no `Deref` and no
/// `PartialEq`: reading the value takes an explicit [`Secret::expose`], and comparing it against
/// client input belongs in constant-time code in the auth module.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret value itself: for the few places that must use it, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}
