//! The third stage: the tree into the raw structs, with every error naming its key path.
//!
//! `serde_json::from_value` reports what is wrong but not where, so this is a small serde
//! `Deserializer` over `&Value` that carries the path down as it goes. It also:
//! - checks each mapping's keys against the struct's own field list before serde sees them, so
//!   every unknown key in the file is reported (not just the first) with the valid keys listed;
//! - never quotes a value in a message (the value may be a secret), only its kind;
//! - reads a whole number as text where text is expected (`issueWait: 0`, `kid: 12345`);
//! - splits an environment string on commas where a list is expected.
//!
//! [`from_subtree`] does the same for one part of the tree read later, once it is known which
//! struct that part is (a `challenges.dns01` entry, by its `provider`), and [`fields`] tells
//! which keys a struct takes, from the struct itself.

use std::{cell::RefCell, fmt};

use serde::{
    Deserialize,
    de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor},
    forward_to_deserialize_any,
};
use serde_json::Value;

use super::{
    error::{ConfigError, Problem},
    report::{Report, Reported},
    tree::{Origins, kind},
};

/// Deserializes the whole tree into `T`, reporting every unknown key and the first type error.
pub(super) fn from_tree<T: for<'de> Deserialize<'de>>(
    tree: &Value,
    origins: &Origins,
) -> Result<T, ConfigError> {
    let (result, mut problems) = deserialize_at::<T>(tree, "", origins);
    match result {
        Ok(value) if problems.is_empty() => return Ok(value),
        Ok(_) => {}
        Err(error) => {
            let key = error.path.unwrap_or_else(|| "config".to_owned());
            problems.push(Problem {
                env_var: origins.var_for(&key).map(str::to_owned),
                key,
                message: error.message,
            });
        }
    }
    Err(ConfigError::Invalid(problems))
}

/// Deserializes `value`, the subtree at `path`, into `T` as [`from_tree`] does the whole tree,
/// every problem recorded in `report`: for a part whose struct is known only once another key
/// has been read (a `challenges.dns01` entry's keys depend on its `provider`).
pub(super) fn from_subtree<T: for<'de> Deserialize<'de>>(
    value: &Value,
    path: &str,
    report: &mut Report<'_>,
) -> Result<T, Reported> {
    let (result, problems) = deserialize_at::<T>(value, path, report.origins());
    let mut reported = None;
    for problem in problems {
        reported = Some(report.error(&problem.key, problem.message));
    }
    match (result, reported) {
        (Ok(value), None) => Ok(value),
        (Ok(_), Some(reported)) => Err(reported),
        (Err(error), _) => {
            let key = error.path.unwrap_or_else(|| path.to_owned());
            Err(report.error(&key, error.message))
        }
    }
}

/// The keys of struct `T` as serde reads them (renamed, in declaration order), taken from its
/// `Deserialize` impl: what a `deserialize_struct` call is given, so a list of valid keys is
/// never written by hand. Empty for a type that is not a struct.
pub(super) fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldsOf) {
        Err(Fields(fields)) => fields,
        // `FieldsOf` produces no value, so no type can be built from it.
        Ok(_) => &[],
    }
}

/// Runs `T`'s deserialization over `value` at `path`: its result, and the unknown keys found.
fn deserialize_at<T: for<'de> Deserialize<'de>>(
    value: &Value,
    path: &str,
    origins: &Origins,
) -> (Result<T, DeError>, Vec<Problem>) {
    let problems = RefCell::new(Vec::new());
    let result = T::deserialize(PathDe {
        value,
        path: path.to_owned(),
        origins,
        problems: &problems,
    });
    (result, problems.into_inner())
}

/// A deserialization error, with the path of the deepest key it arose at.
#[derive(Debug)]
struct DeError {
    path: Option<String>,
    message: String,
}

impl DeError {
    /// Attaches `path` unless a deeper key already claimed the error.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() && !path.is_empty() {
            self.path = Some(path.to_owned());
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            path: None,
            message: msg.to_string(),
        }
    }

    // serde's default messages quote the value; these say only what kind it was.
    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format!(
            "expected {expected}, found {}",
            unexpected_kind(&unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self::custom(format!(
            "invalid {}: expected {expected}",
            unexpected_kind(&unexpected)
        ))
    }
}

/// A deserializer for the tree node at `path`.
struct PathDe<'a> {
    value: &'a Value,
    path: String,
    origins: &'a Origins,
    problems: &'a RefCell<Vec<Problem>>,
}

impl<'a> PathDe<'a> {
    /// The deserializer for a child node.
    fn child(&self, value: &'a Value, path: String) -> Self {
        Self {
            value,
            path,
            origins: self.origins,
            problems: self.problems,
        }
    }

    /// Records an unknown key and carries on, so all of them are reported.
    fn reject_key(&self, key: &str, fields: &[&str]) {
        let path = join(&self.path, key);
        let message = format!("unknown key; expected one of {}", fields.join(", "));
        self.problems.borrow_mut().push(Problem {
            env_var: self.origins.var_for(&path).map(str::to_owned),
            key: path,
            message,
        });
    }

    fn error(&self, message: String) -> DeError {
        DeError {
            path: Some(self.path.clone()),
            message,
        }
    }
}

impl<'de> de::Deserializer<'de> for PathDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, f) => visitor.visit_f64(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => visitor.visit_seq(Items::new(&self, items)),
            Value::Object(map) => visitor.visit_map(Entries::new(&self, map, None)),
        };
        result.map_err(|e| e.at(&self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::String(s) => visitor.visit_str(s),
            // A whole number reads back exactly; a float or a huge integer would not, so those
            // must be quoted.
            Value::Number(n) if n.is_u64() || n.is_i64() => visitor.visit_string(n.to_string()),
            Value::Number(_) => Err(self.error(
                "expected a string, found a number that is not a whole number; put the value in \
                 quotes if it is meant as text"
                    .to_owned(),
            )),
            Value::Bool(_) => Err(self.error(
                "expected a string, found a boolean (YAML reads yes, no, on and off as booleans); \
                 put the value in quotes if it is meant as text"
                    .to_owned(),
            )),
            other => Err(self.error(format!("expected a string, found {}", kind(other)))),
        };
        result.map_err(|e| e.at(&self.path))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::Array(items) => visitor.visit_seq(Items::new(&self, items)),
            // Environment values are strings: `CERTFLEET_..._DOMAINS="a.com,*.b.com"`.
            Value::String(s) if self.origins.is_env_value(&self.path) => {
                let parts: Vec<Value> = s
                    .split(',')
                    .map(str::trim)
                    .filter(|part| !part.is_empty())
                    .map(|part| Value::String(part.to_owned()))
                    .collect();
                visitor.visit_seq(Items::new(&self, &parts))
            }
            other => Err(self.error(format!("expected a list, found {}", kind(other)))),
        };
        result.map_err(|e| e.at(&self.path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let empty = serde_json::Map::new();
        let map = match self.value {
            Value::Object(map) => map,
            // `server:` with nothing under it: the same as leaving the section out.
            Value::Null => &empty,
            other => {
                return Err(self.error(format!(
                    "expected a mapping with keys {}, found {}",
                    fields.join(", "),
                    kind(other)
                )));
            }
        };
        for key in map.keys().filter(|k| !fields.contains(&k.as_str())) {
            self.reject_key(key, fields);
        }
        visitor
            .visit_map(Entries::new(&self, map, Some(fields)))
            .map_err(|e| e.at(&self.path))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    /// `true` or `false`, also as text (an environment variable's value is always text).
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::String(s) if s == "true" => visitor.visit_bool(true),
            Value::String(s) if s == "false" => visitor.visit_bool(false),
            other => Err(self.error(format!("expected true or false, found {}", kind(other)))),
        };
        result.map_err(|e| e.at(&self.path))
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct tuple tuple_struct map enum identifier
    }
}

/// The items of a list, each deserialized at `path[i]`.
struct Items<'a, 'p> {
    parent: &'p PathDe<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
}

impl<'a, 'p> Items<'a, 'p> {
    fn new(parent: &'p PathDe<'a>, items: &'a [Value]) -> Self {
        Self {
            parent,
            items: items.iter().enumerate(),
        }
    }
}

impl<'de> SeqAccess<'de> for Items<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, value)) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{i}]", self.parent.path);
        seed.deserialize(self.parent.child(value, path)).map(Some)
    }
}

/// The entries of a mapping, limited to `fields` when deserializing a struct (the others were
/// reported by [`PathDe::reject_key`]).
struct Entries<'a, 'p> {
    parent: &'p PathDe<'a>,
    entries: serde_json::map::Iter<'a>,
    fields: Option<&'static [&'static str]>,
    pending: Option<(&'a str, &'a Value)>,
}

impl<'a, 'p> Entries<'a, 'p> {
    fn new(
        parent: &'p PathDe<'a>,
        map: &'a serde_json::Map<String, Value>,
        fields: Option<&'static [&'static str]>,
    ) -> Self {
        Self {
            parent,
            entries: map.iter(),
            fields,
            pending: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let fields = self.fields;
        let next = self
            .entries
            .by_ref()
            .find(|(key, _)| fields.is_none_or(|f| f.contains(&key.as_str())));
        let Some((key, value)) = next else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        seed.deserialize(key.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(self.parent.child(value, join(&self.parent.path, key)))
    }
}

/// `server` + `listen` -> `server.listen`.
fn join(parent: &str, key: &str) -> String {
    match parent.is_empty() {
        true => key.to_owned(),
        false => format!("{parent}.{key}"),
    }
}

/// What kind of value serde found, without the value itself.
fn unexpected_kind(unexpected: &Unexpected<'_>) -> &'static str {
    match unexpected {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "an empty value",
        Unexpected::Seq => "a list",
        Unexpected::Map => "a mapping",
        _ => "a value of another kind",
    }
}

/// A deserializer that only listens: it refuses every request, and a `deserialize_struct`
/// request's refusal carries the struct's field list (see [`fields`]).
struct FieldsOf;

/// The refusal of [`FieldsOf`]: the fields asked for, or none.
#[derive(Debug)]
struct Fields(&'static [&'static str]);

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fields {}", self.0.join(", "))
    }
}

impl std::error::Error for Fields {}

impl de::Error for Fields {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Self(&[])
    }
}

impl<'de> de::Deserializer<'de> for FieldsOf {
    type Error = Fields;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Fields> {
        Err(Fields(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Fields> {
        Err(Fields(fields))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)] // only its field list is read
    struct Sample {
        api_token: Option<String>,
        tsig_key_name: Option<String>,
    }

    #[test]
    fn fields_are_the_struct_s_own_renamed_keys() {
        assert_eq!(fields::<Sample>(), ["apiToken", "tsigKeyName"]);
        assert!(fields::<String>().is_empty());
    }
}
