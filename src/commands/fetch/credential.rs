//! How the client authenticates: an API key or a bearer token, from a file or the
//! environment. The secret is never printed: `Debug` redacts it and no message quotes it.

use std::fmt;
use std::path::Path;

use reqwest::header::HeaderValue;

use super::{API_KEY_ENV, FetchArgs, TOKEN_ENV, files};

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
        args: &FetchArgs,
        env: impl Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
    ) -> Result<Self, String> {
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
            (Some(_), Some(_)) => Err(format!(
                "both {API_KEY_ENV} and {TOKEN_ENV} are set; keep one, or pass --api-key-file / --token-file"
            )),
            (Some(key), None) => Ok(Self::ApiKey(key)),
            (None, Some(token)) => Ok(Self::Bearer(token)),
            (None, None) => Err(format!(
                "no credentials: pass --api-key-file FILE or --token-file FILE, or set {API_KEY_ENV} or {TOKEN_ENV}"
            )),
        }
    }

    /// The `Authorization` header, marked sensitive so HTTP debug output leaves it out.
    pub(super) fn header(&self) -> Result<HeaderValue, String> {
        let (scheme, secret, what) = match self {
            Self::ApiKey(key) => ("APIKey", key, "the API key"),
            Self::Bearer(token) => ("Bearer", token, "the token"),
        };
        if secret.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "{what} holds spaces, control or non-ASCII characters; check the file or variable it comes from"
            ));
        }
        let mut value = HeaderValue::from_str(&format!("{scheme} {secret}"))
            .map_err(|_| format!("{what} cannot be sent in an HTTP header"))?;
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
fn read_secret(path: &Path, flag: &str, warnings: &mut Vec<String>) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{flag} {}: the file is empty", path.display()));
    }
    if files::world_readable(path) {
        warnings.push(format!(
            "{flag} {} is readable by every user; chmod 600 it",
            path.display()
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
        assert!(!err.contains("abc"), "{err}");
    }
}
