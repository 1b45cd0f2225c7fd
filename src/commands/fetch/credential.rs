//! How the client authenticates: an API key or a bearer token, from a file or the
//! environment. The secret is never printed: `Debug` redacts it and no message quotes it.

use std::fmt;
use std::path::Path;

use reqwest::header::{HeaderValue, InvalidHeaderValue};

use super::args::{API_KEY_ENV, FlagPath, ServerArgs, TOKEN_ENV};
use super::files;

/// Why no usable credential was found. No variant holds the secret or any part of it.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Both environment variables are set and neither flag chooses.
    #[error(
        "both {API_KEY_ENV} and {TOKEN_ENV} are set; keep one, or pass --api-key-file / --token-file"
    )]
    Ambiguous,
    /// Neither a flag nor an environment variable gives one.
    #[error(
        "no credentials: pass --api-key-file FILE or --token-file FILE, or set {API_KEY_ENV} or {TOKEN_ENV}"
    )]
    Missing,
    /// The secret file cannot be read.
    #[error("{file}: cannot read it: {source}")]
    Unreadable {
        file: FlagPath,
        source: std::io::Error,
    },
    /// The secret file holds nothing but whitespace.
    #[error("{file}: the file is empty")]
    Empty { file: FlagPath },
    /// The secret has characters an `Authorization` header cannot carry as one token.
    #[error(
        "{what} holds spaces, control or non-ASCII characters; check the file or variable it comes from"
    )]
    Unprintable { what: Secret },
    /// The header value was refused anyway.
    #[error("{what} cannot be sent in an HTTP header")]
    NotAHeader {
        what: Secret,
        source: InvalidHeaderValue,
    },
}

/// Which kind of secret a message is about, in its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// A pre-shared API key.
    ApiKey,
    /// A bearer token.
    Token,
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ApiKey => "the API key",
            Self::Token => "the token",
        })
    }
}

/// How the client authenticates; `Debug` never shows the secret.
pub(super) enum Credential {
    /// `Authorization: APIKey <key>` (a pre-shared key from `auth.psk`).
    ApiKey(String),
    /// `Authorization: Bearer <token>` (an OIDC access token or an Akash JWT).
    Bearer(String),
}

impl Credential {
    /// A file flag wins over the environment (the command line is the more deliberate choice);
    /// both environment variables at once are refused as ambiguous.
    pub(super) fn new(
        args: &ServerArgs,
        env: impl Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
    ) -> Result<Self, CredentialError> {
        if let Some(path) = &args.api_key_file {
            return read_secret(path, "--api-key-file", warnings).map(Self::ApiKey);
        }
        if let Some(path) = &args.token_file {
            return read_secret(path, "--token-file", warnings).map(Self::Bearer);
        }
        let from_env = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        match (from_env(API_KEY_ENV), from_env(TOKEN_ENV)) {
            (Some(_), Some(_)) => Err(CredentialError::Ambiguous),
            (Some(key), None) => Ok(Self::ApiKey(key)),
            (None, Some(token)) => Ok(Self::Bearer(token)),
            (None, None) => Err(CredentialError::Missing),
        }
    }

    /// The `Authorization` header, marked sensitive so HTTP debug output leaves it out.
    pub(super) fn header(&self) -> Result<HeaderValue, CredentialError> {
        let (scheme, secret, what) = match self {
            Self::ApiKey(key) => ("APIKey", key, Secret::ApiKey),
            Self::Bearer(token) => ("Bearer", token, Secret::Token),
        };
        if secret.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(CredentialError::Unprintable { what });
        }
        let mut value = HeaderValue::from_str(&format!("{scheme} {secret}"))
            .map_err(|source| CredentialError::NotAHeader { what, source })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Reads a secret from a file, trimmed; warns when every user may read the file.
fn read_secret(
    path: &Path,
    flag: &'static str,
    warnings: &mut Vec<String>,
) -> Result<String, CredentialError> {
    let file = || FlagPath::new(flag, path);
    let text = std::fs::read_to_string(path).map_err(|source| CredentialError::Unreadable {
        file: file(),
        source,
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(CredentialError::Empty { file: file() });
    }
    if files::world_readable(path) {
        warnings.push(format!(
            "{} is readable by every user; chmod 600 it",
            file()
        ));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_debug_is_redacted() {
        let text = format!("{:?}", Credential::ApiKey("secret-key".to_owned()));
        assert!(!text.contains("secret-key"), "{text}");
    }

    #[test]
    fn a_key_with_inner_whitespace_is_refused_without_echoing_it() {
        let err = Credential::ApiKey("abc def".to_owned())
            .header()
            .expect_err("inner space");
        assert!(!err.to_string().contains("abc"), "{err}");
        assert!(!format!("{err:?}").contains("abc"), "{err:?}");
    }
}
