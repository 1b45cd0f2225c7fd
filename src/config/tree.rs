//! The first two stages: YAML text to a generic tree, then `CERTFLEET_*` overrides applied to it.
//!
//! Overrides work on the tree, before any typing, so an environment variable can set any key the
//! file can, including list items, and the later stages treat both sources alike. [`Origins`]
//! remembers which keys the environment set, so an error names the variable.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{ConfigError, Problem};

/// The prefix of every override variable.
const PREFIX: &str = "CERTFLEET_";

/// Parses YAML text into a tree whose top is a mapping; an empty file is an empty mapping.
pub(super) fn parse_yaml(text: &str, file: &str) -> Result<Value, ConfigError> {
    let mut options = serde_saphyr::Options::default();
    // A snippet would quote lines of the file, and a line may hold a secret.
    options.with_snippet = false;
    // `0123` and `1_000` stay text, so a key or ID written that way is not altered.
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    let yaml_error = |message: String| ConfigError::Yaml {
        file: file.to_owned(),
        message,
    };
    let tree: Value = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        // The parser's hint names a Rust API; the user needs to fix the file instead.
        yaml_error(
            e.to_string()
                .replace(", set DuplicateKeyPolicy in Options if acceptable", ""),
        )
    })?;
    match tree {
        Value::Object(_) => Ok(tree),
        Value::Null => Ok(Value::Object(Map::new())),
        other => Err(yaml_error(format!(
            "the top level must be a mapping of sections (server, storage, acme, challenges, \
             auth), not {}",
            kind(&other)
        ))),
    }
}

/// Where values came from, for error messages: which keys the environment set or created.
#[derive(Debug, Default)]
pub(super) struct Origins {
    /// Key path -> the variable that set its value.
    set: BTreeMap<String, String>,
    /// Key path -> the variable whose override created this (absent) mapping, list or item.
    created: BTreeMap<String, String>,
}

impl Origins {
    /// The variable behind the value at `path`, or behind one of its parents.
    pub(super) fn var_for(&self, path: &str) -> Option<&str> {
        if let Some(var) = self.set.get(path).or_else(|| self.created.get(path)) {
            return Some(var);
        }
        self.set
            .iter()
            .find(|(set, _)| {
                path.strip_prefix(set.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
            .map(|(_, var)| var.as_str())
    }

    /// Whether the value at exactly `path` is a string from the environment (so a list-typed key
    /// may split it on commas).
    pub(super) fn is_env_value(&self, path: &str) -> bool {
        self.set.contains_key(path)
    }
}

/// Applies every `CERTFLEET_<KEY>__<KEY>...` variable to the tree.
///
/// Variables without the prefix, or without a `__` after it (`CERTFLEET_PORT`, which Kubernetes
/// injects for a Service named certfleet; `CERTFLEET_CONFIG`), are not overrides and are skipped.
pub(super) fn apply_env(
    tree: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Origins, ConfigError> {
    let mut problems = Vec::new();
    let mut overrides = Vec::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        match segments(rest) {
            Ok(segments) => overrides.push((segments, var, value)),
            Err(message) => problems.push(Problem {
                key: var.clone(),
                env_var: Some(var),
                message,
            }),
        }
    }
    // Sorted by path with numeric indexes, so `KEYS__0` comes before `KEYS__1` and `KEYS__10`
    // whatever order the process environment lists them in.
    overrides.sort();
    let mut origins = Origins::default();
    for (segments, var, value) in overrides {
        if let Err(problem) = set(tree, &segments, &var, value, &mut origins) {
            problems.push(problem);
        }
    }
    match problems.is_empty() {
        true => Ok(origins),
        false => Err(ConfigError::Invalid(problems)),
    }
}

/// One level of an override's path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    /// A mapping key, already in camelCase.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Splits `ACME__DIRECTORY_URL` into `[acme, directoryUrl]`.
fn segments(rest: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for (i, part) in rest.split("__").enumerate() {
        let well_formed = !part.is_empty()
            && part.split('_').all(|word| !word.is_empty())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(
                "is not a valid override name: write the key path in UPPER_SNAKE_CASE with \
                 levels joined by __, e.g. CERTFLEET_ACME__DIRECTORY_URL"
                    .to_owned(),
            );
        }
        match part.parse::<usize>() {
            Ok(index) if i > 0 => out.push(Segment::Index(index)),
            Ok(_) => return Err("cannot start with a list index".to_owned()),
            Err(_) => out.push(Segment::Key(camel_case(part))),
        }
    }
    Ok(out)
}

/// `DIRECTORY_URL` -> `directoryUrl`, `HTTP01` -> `http01`.
fn camel_case(upper_snake: &str) -> String {
    let mut out = String::with_capacity(upper_snake.len());
    for (i, word) in upper_snake.split('_').enumerate() {
        let lower = word.to_ascii_lowercase();
        let mut chars = lower.chars();
        if let (true, Some(first)) = (i > 0, chars.next()) {
            out.push(first.to_ascii_uppercase());
            out.push_str(chars.as_str());
        } else {
            out.push_str(&lower);
        }
    }
    out
}

/// Sets one override's value in the tree, creating the mappings and list items on its way.
fn set(
    tree: &mut Value,
    segments: &[Segment],
    var: &str,
    value: String,
    origins: &mut Origins,
) -> Result<(), Problem> {
    let problem = |key: &str, message: String| Problem {
        key: key.to_owned(),
        env_var: Some(var.to_owned()),
        message,
    };
    let mut node = tree;
    let mut path = String::new();
    for segment in segments {
        let parent = path.clone();
        let child = match segment {
            Segment::Key(key) => {
                if node.is_null() {
                    *node = Value::Object(Map::new());
                }
                let Value::Object(map) = node else {
                    return Err(problem(&parent, not_a("mapping", node)));
                };
                path = match parent.is_empty() {
                    true => key.clone(),
                    false => format!("{parent}.{key}"),
                };
                map.entry(key.as_str()).or_insert_with(|| {
                    origins.created.insert(path.clone(), var.to_owned());
                    Value::Null
                })
            }
            Segment::Index(index) => {
                if node.is_null() {
                    *node = Value::Array(Vec::new());
                }
                let Value::Array(items) = node else {
                    return Err(problem(&parent, not_a("list", node)));
                };
                path = format!("{parent}[{index}]");
                if *index == items.len() {
                    origins.created.insert(path.clone(), var.to_owned());
                    items.push(Value::Null);
                }
                let len = items.len();
                items.get_mut(*index).ok_or_else(|| {
                    problem(
                        &path,
                        format!(
                            "index {index} leaves a gap: {parent} has {len} items, so the next \
                             one is index {len}; number list items from 0 without gaps"
                        ),
                    )
                })?
            }
        };
        node = child;
    }
    *node = Value::String(value);
    origins.set.insert(path, var.to_owned());
    Ok(())
}

/// The message for an override that needs a mapping or list where the tree has something else.
fn not_a(wanted: &str, found: &Value) -> String {
    format!(
        "is {} here, so an override cannot set a key inside it; remove the conflicting value or \
         variable (expected a {wanted})",
        kind(found)
    )
}

/// A value's kind, for messages that must not quote the value itself.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
