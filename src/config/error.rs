//! [`ConfigError`] and [`Problem`]: what went wrong, where, and how to fix it.

use std::{fmt, io, path::PathBuf};

/// Why the configuration could not be loaded. Its `Display` is a complete message for a human.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error(
        "cannot read config file {}: {source}; check --config or CERTFLEET_CONFIG",
        path.display()
    )]
    Read {
        /// The file named by `--config` or `CERTFLEET_CONFIG`.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The config file is not YAML, or not a mapping at the top.
    #[error("config file {file} is not valid: {message}")]
    Yaml {
        /// The file's name (or `<text>` for [`super::Config::from_yaml`]).
        file: String,
        /// The parser's message, with line and column; never a snippet of the file, which could
        /// hold a secret.
        message: String,
    },
    /// One or more keys have a problem; all of them are listed, not just the first.
    #[error("{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems with individual keys (empty for a file that could not be read or parsed).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            Self::Read { .. } | Self::Yaml { .. } => &[],
        }
    }
}

/// One problem with one config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path, as written in the file: `acme.keyType`, `auth.psk.keys[1].key`.
    pub key: String,
    /// The `CERTFLEET_*` variable the value came from, when it came from the environment.
    pub env_var: Option<String>,
    /// What is wrong and how to fix it; never a secret's value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env_var {
            Some(var) => write!(f, "{} (from {var}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Renders the problems one per line, under a line that counts them.
struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}
