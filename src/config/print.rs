//! How `check-config` prints typed values: each as the text a user could paste back into the
//! file (addresses, durations, sizes, key types, paths), used through `#[serde(serialize_with)]`.

use std::{fmt::Display, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Serializer;

use crate::domain::KeyType;
use crate::util::duration::format_duration;
use crate::util::size::format_size;

pub(super) fn as_display<T: Display, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// A listener that may be off, printed as `""` then, which is also how it is turned off.
pub(super) fn as_optional_listen<S: Serializer>(
    value: &Option<SocketAddr>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(address) => serializer.collect_str(address),
        None => serializer.serialize_str(""),
    }
}

pub(super) fn as_duration<S: Serializer>(
    value: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*value))
}

pub(super) fn as_size<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_size(*value))
}

pub(super) fn as_key_type<S: Serializer>(
    value: &KeyType,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.as_str())
}

pub(super) fn as_optional_path<S: Serializer>(
    value: &Option<PathBuf>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(path) => serializer.collect_str(&path.display()),
        None => serializer.serialize_none(),
    }
}

pub(super) fn as_display_seq<'a, L, T, S>(value: &'a L, serializer: S) -> Result<S::Ok, S::Error>
where
    &'a L: IntoIterator<Item = &'a T>,
    T: Display + 'a,
    S: Serializer,
{
    serializer.collect_seq(value.into_iter().map(ToString::to_string))
}
