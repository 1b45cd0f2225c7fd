//! The files written beside the PEM files: `--format p12` adds `cert.p12` (key and full chain,
//! PKCS#12, [`p12`](super::p12)), `--combined` adds `combined.pem` (key then full chain, as
//! HAProxy's `crt` wants). Both hold the key: mode 0600.
//!
//! The PEM files are always written: they are what the next run compares with the server's
//! answer, what `.etag` stands for, and, with `--key local`, where the key lives.

use std::fmt;
use std::path::Path;

use certfleet::util::pem;

use super::args::{FetchArgs, FlagPath};
use super::bundle::Bundle;
use super::files::Extra;
use super::p12;

/// The PKCS#12 file of `--format p12`.
pub(super) const P12: &str = "cert.p12";
/// The key + full chain PEM of `--combined`.
pub(super) const COMBINED: &str = "combined.pem";

/// `--format`, `--p12-password-file` and `--combined` that do not make a run.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// `--format` is neither `pem` nor `p12`.
    #[error("--format {text:?}: use pem (PEM files) or p12 (also DIR/cert.p12, PKCS#12)")]
    Unknown { text: String },
    /// `--format p12` without a password.
    #[error(
        "--format p12 needs --p12-password-file FILE: the PKCS#12 file is encrypted with the password in it"
    )]
    NoPassword,
    /// `--p12-password-file` without `--format p12`.
    #[error("--p12-password-file is the password of --format p12: add --format p12 or drop it")]
    PasswordWithoutP12,
    /// The password file cannot be read.
    #[error("{file}: cannot read it: {source}")]
    Unreadable {
        file: FlagPath,
        source: std::io::Error,
    },
    /// The password file holds no password.
    #[error("{file}: the file holds no password (its first line is empty)")]
    Empty { file: FlagPath },
}

/// A bundle's files that could not be rendered; nothing was written. No variant holds key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The private key does not parse.
    #[error("{file}: the private key cannot be read for {target}")]
    Key {
        file: &'static str,
        target: &'static str,
    },
    /// A certificate PEM does not decode.
    #[error("the certificates cannot be read for {P12}: {source}")]
    Certificates { source: pem::PemError },
    /// The system's random source or the cipher failed.
    #[error("encrypting {P12} failed")]
    Crypto,
}

/// The PKCS#12 password; `Debug` redacts it.
pub(super) struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The extra files a run writes.
#[derive(Debug, Default)]
pub(super) struct Formats {
    /// `--format p12`, with its password.
    p12: Option<Password>,
    /// `--combined`.
    combined: bool,
}

impl Formats {
    /// Checks the flags and reads the password file.
    pub(super) fn new(args: &FetchArgs) -> Result<Self, FormatError> {
        let p12 = match (args.format.as_str(), &args.p12_password_file) {
            ("pem", None) => None,
            ("pem", Some(_)) => return Err(FormatError::PasswordWithoutP12),
            ("p12", None) => return Err(FormatError::NoPassword),
            ("p12", Some(path)) => Some(read_password(path)?),
            (other, _) => {
                return Err(FormatError::Unknown {
                    text: other.to_owned(),
                });
            }
        };
        Ok(Self {
            p12,
            combined: args.combined,
        })
    }

    /// The names of the extra files (a 304 is trusted only when they are all there).
    pub(super) fn files(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.p12.is_some() {
            names.push(P12);
        }
        if self.combined {
            names.push(COMBINED);
        }
        names
    }

    /// The extra files for `bundle`, whose private key is `key_pem` (read from `key_file`, as
    /// messages name it).
    pub(super) fn render(
        &self,
        bundle: &Bundle,
        key_pem: &str,
        key_file: &'static str,
    ) -> Result<Vec<Extra>, RenderError> {
        let mut extras = Vec::new();
        if self.p12.is_none() && !self.combined {
            return Ok(extras);
        }
        let pkcs8 = |target| {
            rcgen::KeyPair::from_pem(key_pem)
                .map(|key| key.serialize_der())
                .map_err(|_| RenderError::Key {
                    file: key_file,
                    target,
                })
        };
        if let Some(password) = &self.p12 {
            let key = pkcs8(P12)?;
            let certs = pem::certificates(&bundle.fullchain_pem)
                .map_err(|source| RenderError::Certificates { source })?;
            let chain: Vec<&[u8]> = certs.iter().map(AsRef::as_ref).collect();
            let salts = p12::Salts::random().map_err(|_| RenderError::Crypto)?;
            let der =
                p12::encode(&key, &chain, &password.0, salts).map_err(|_| RenderError::Crypto)?;
            // Salted afresh each time: compared by content it would always differ.
            extras.push(Extra {
                name: P12,
                content: der,
                salted: true,
            });
        }
        if self.combined {
            let key = pkcs8(COMBINED)?;
            let text = format!(
                "{}{}",
                pem::encode("PRIVATE KEY", &key),
                bundle.fullchain_pem
            );
            extras.push(Extra {
                name: COMBINED,
                content: text.into_bytes(),
                salted: false,
            });
        }
        Ok(extras)
    }
}

/// The first line of the password file, surrounding whitespace removed.
fn read_password(path: &Path) -> Result<Password, FormatError> {
    let file = || FlagPath::new("--p12-password-file", path);
    let text = std::fs::read_to_string(path).map_err(|source| FormatError::Unreadable {
        file: file(),
        source,
    })?;
    let line = text.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(FormatError::Empty { file: file() });
    }
    Ok(Password(line.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: FetchArgs,
    }

    fn formats(extra: &[&str]) -> Result<Formats, FormatError> {
        let mut argv = vec![
            "fetch",
            "--server",
            "https://certs.example.com",
            "--domain",
            "www.example.com",
            "--out",
            "/tmp/x",
        ];
        argv.extend_from_slice(extra);
        Formats::new(&Cli::try_parse_from(argv).expect("flags").args)
    }

    #[test]
    fn the_flags_are_checked_and_the_password_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "  hunter2 \nsecond line\n").expect("write");
        let file = file.to_str().expect("utf-8");

        assert!(formats(&[]).expect("default").files().is_empty());
        let ok =
            formats(&["--format", "p12", "--p12-password-file", file, "--combined"]).expect("p12");
        assert_eq!(ok.files(), vec![P12, COMBINED]);
        assert_eq!(ok.p12.as_ref().map(|p| p.0.as_str()), Some("hunter2"));
        assert!(!format!("{ok:?}").contains("hunter2"), "{ok:?}");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n\n").expect("write");
        let empty = empty.to_str().expect("utf-8");
        for (flags, want) in [
            (&["--format", "pfx"][..], "--format \"pfx\": use pem"),
            (
                &["--format", "p12"],
                "--format p12 needs --p12-password-file",
            ),
            (&["--p12-password-file", file], "add --format p12"),
            (
                &["--format", "p12", "--p12-password-file", empty],
                "holds no password",
            ),
            (
                &["--format", "p12", "--p12-password-file", "/nonexistent/pw"],
                "--p12-password-file /nonexistent/pw: cannot read it",
            ),
        ] {
            let err = formats(flags).expect_err("refused").to_string();
            assert!(err.contains(want), "{flags:?}: {err}");
        }
    }
}
