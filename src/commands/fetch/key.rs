//! `--key local`: the client's own key. It is made here, kept in `DIR/key.pem` (0600) and never
//! sent: the server gets a CSR for the run's names and knows the key by its `spkiSha256`
//! (base64url of SHA-256 over its SubjectPublicKeyInfo).
//!
//! A rotation makes the new key in `DIR/.key.next.pem` before anything goes to the server, and
//! orders with it; only a certificate for that key renames it over `key.pem` ([`files`]). A
//! rotation that was interrupted (a 202, a refusal, a crash) is resumed by the next run with the
//! same new key, so no two orders are ever made with two different new keys.
//!
//! [`files`]: super::files

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use certfleet::acme::cert::{self, KeyError};
use certfleet::acme::csr::{self, CsrError};
use certfleet::domain::{KeyType, NameSet, SpkiHash};

use super::files::{ClientKey, FilesError, KEY, NEXT_KEY, OutDir};
use super::http::Ask;

/// `--rotate-key` and `--rotate-every`: when `--key local` replaces its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Rotation {
    /// `--rotate-key`: on this run.
    pub(super) now: bool,
    /// `--rotate-every`: once the key has been through this many renewals; 0 is never.
    pub(super) every: u32,
}

impl Rotation {
    /// Whether a key that has been through `renewals` renewals is to be replaced.
    fn due(self, renewals: u32) -> bool {
        self.now || (self.every > 0 && renewals >= self.every)
    }
}

/// Why the local key or its CSR is not ready. Each names the key file; none holds key material.
#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    /// A key file cannot be read or written.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// A key file holds no private key rcgen reads.
    #[error(
        "{}: not a PEM private key ({source}); move it away to have a new key made",
        .path.display()
    )]
    NotAKey { path: PathBuf, source: rcgen::Error },
    /// Making a key or its CSR failed (certfleet's own failure, not the file's).
    #[error("{}: {source}", .path.display())]
    Make { path: PathBuf, source: KeyError },
    /// The key's CSR is one certfleet refuses (a weak or unknown kind of key, usually).
    #[error("{}: the server would refuse its CSR: {source}", .path.display())]
    Refused { path: PathBuf, source: CsrError },
}

/// One of this machine's keys, as the server is told about it. The private key itself is not
/// kept: only the CSR it signed.
#[derive(Debug, Clone)]
pub(super) struct LocalKey {
    /// The file it is in: [`KEY`] or [`NEXT_KEY`].
    file: &'static str,
    /// The CSR for the run's names, base64url DER (as RFC 8555 section 7.4 carries it).
    pub(super) csr: String,
    /// Its SubjectPublicKeyInfo, DER: the leaf must carry exactly this.
    pub(super) spki_der: Vec<u8>,
    /// SHA-256 of `spki_der`, base64url without padding: how the API names the key.
    pub(super) spki_sha256: String,
    /// Its algorithm as key types are named (`ecdsa-p256`, `rsa-2048`...).
    algorithm: String,
}

impl LocalKey {
    /// The key in `file`, `None` when there is no such file.
    fn read(
        out: &OutDir,
        file: &'static str,
        names: &NameSet,
    ) -> Result<Option<Self>, LocalKeyError> {
        match out.read(file)? {
            Some(pem) => Ok(Some(Self::new(out, file, names, &pem)?)),
            None => Ok(None),
        }
    }

    /// Makes a key of `key_type` and writes it as `file`, mode 0600, atomically.
    fn make(
        out: &OutDir,
        file: &'static str,
        names: &NameSet,
        key_type: KeyType,
    ) -> Result<Self, LocalKeyError> {
        let pem = cert::new_key(key_type).map_err(|source| LocalKeyError::Make {
            path: out.path(file),
            source,
        })?;
        out.write_private(file, &pem)?;
        Self::new(out, file, names, &pem)
    }

    /// The key `pem` from `file`, with its CSR for `names`, checked as the server checks it.
    fn new(
        out: &OutDir,
        file: &'static str,
        names: &NameSet,
        pem: &str,
    ) -> Result<Self, LocalKeyError> {
        let path = || out.path(file);
        rcgen::KeyPair::from_pem(pem).map_err(|source| LocalKeyError::NotAKey {
            path: path(),
            source,
        })?;
        let made = cert::csr(names, pem).map_err(|source| LocalKeyError::Make {
            path: path(),
            source,
        })?;
        let csr = URL_SAFE_NO_PAD.encode(&made.csr_der);
        let checked = csr::parse(&csr).map_err(|source| LocalKeyError::Refused {
            path: path(),
            source,
        })?;
        Ok(Self {
            file,
            csr,
            spki_der: made.spki_der,
            spki_sha256: SpkiHash::from_digest(&checked.spki_sha256)
                .digest_b64()
                .to_owned(),
            algorithm: checked.key.name(),
        })
    }
}

/// What a `--key local` run asks for, decided before the network.
#[derive(Debug)]
pub(super) enum KeyStep {
    /// The certificate of the key in `key.pem`.
    Keep(LocalKey),
    /// A certificate for the new key in `.key.next.pem`, replacing the current key's (`None`
    /// when `key.pem` is missing).
    Rotate {
        current: Option<LocalKey>,
        next: LocalKey,
    },
}

impl KeyStep {
    /// Reads the keys in `out`, making what is missing, and decides: a rotation under way
    /// (`.key.next.pem` exists) goes on with its key; a missing `key.pem` is made; a rotation
    /// starts when `rotation` is due. A key made here is of `key_type`, else of the current
    /// key's type, else ecdsa-p256. A `key_type` the key in use does not have is a warning.
    pub(super) fn prepare(
        out: &OutDir,
        names: &NameSet,
        key_type: Option<KeyType>,
        rotation: Rotation,
        warnings: &mut Vec<String>,
    ) -> Result<Self, LocalKeyError> {
        let current = LocalKey::read(out, KEY, names)?;
        let step = match (current, LocalKey::read(out, NEXT_KEY, names)?) {
            (current, Some(next)) => Self::Rotate { current, next },
            (None, None) => Self::Keep(LocalKey::make(
                out,
                KEY,
                names,
                key_type.unwrap_or_default(),
            )?),
            (Some(current), None) if rotation.due(out.renewals(&current.spki_sha256)) => {
                let next_type = key_type
                    .or_else(|| KeyType::parse(&current.algorithm))
                    .unwrap_or_default();
                let next = LocalKey::make(out, NEXT_KEY, names, next_type)?;
                Self::Rotate {
                    current: Some(current),
                    next,
                }
            }
            (Some(current), None) => Self::Keep(current),
        };
        warnings.extend(step.other_type(out, key_type));
        Ok(step)
    }

    /// The warning when `--key-type` names another type than the key in use has.
    fn other_type(&self, out: &OutDir, key_type: Option<KeyType>) -> Option<String> {
        let key = self.key();
        let wanted = key_type?;
        (key.algorithm != wanted.as_str()).then(|| {
            format!(
                "--key-type {wanted}: {} is an {} key and stays in use; a key is replaced only by a rotation (--rotate-key)",
                out.path(key.file).display(),
                key.algorithm
            )
        })
    }

    /// The key the certificate must be for: the new one during a rotation.
    pub(super) fn key(&self) -> &LocalKey {
        match self {
            Self::Keep(key) | Self::Rotate { next: key, .. } => key,
        }
    }

    /// Whether this run is a rotation.
    pub(super) fn rotating(&self) -> bool {
        matches!(self, Self::Rotate { .. })
    }

    /// What to ask the server.
    pub(super) fn ask(&self) -> Ask<'_> {
        match self {
            Self::Keep(key) => Ask::Local {
                csr: &key.csr,
                spki_sha256: &key.spki_sha256,
            },
            Self::Rotate { current, next } => Ask::Rotation {
                csr: &next.csr,
                spki_sha256: &next.spki_sha256,
                replaces: current.as_ref().map(|key| key.spki_sha256.as_str()),
            },
        }
    }

    /// What [`OutDir::install`] needs to know about the key.
    pub(super) fn client_key(&self) -> ClientKey<'_> {
        ClientKey {
            spki_sha256: &self.key().spki_sha256,
            rotating: self.rotating(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use crate::commands::fetch::bundle::Bundle;

    fn names() -> NameSet {
        NameSet::parse(&["b.example.com", "a.example.com"]).expect("names")
    }

    fn mode(out: &OutDir, file: &str) -> u32 {
        fs::metadata(out.path(file))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    fn prepare(out: &OutDir, key_type: Option<KeyType>, rotation: Rotation) -> KeyStep {
        let mut warnings = Vec::new();
        let step =
            KeyStep::prepare(out, &names(), key_type, rotation, &mut warnings).expect("prepare");
        assert!(warnings.is_empty(), "{warnings:?}");
        step
    }

    /// `--rotate-key`.
    const NOW: Rotation = Rotation {
        now: true,
        every: 0,
    };

    #[test]
    fn a_missing_key_is_made_0600_and_then_reused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = OutDir::open(tmp.path()).expect("open");
        let KeyStep::Keep(first) = prepare(&out, None, Rotation::default()) else {
            panic!("no rotation without key.pem");
        };
        assert_eq!(mode(&out, KEY), 0o600);
        assert_eq!(first.algorithm, "ecdsa-p256");
        let pem = fs::read_to_string(out.path(KEY)).expect("key.pem");

        // spkiSha256: base64url, no padding, of SHA-256 over the SubjectPublicKeyInfo DER.
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &first.spki_der);
        assert_eq!(first.spki_sha256, URL_SAFE_NO_PAD.encode(digest));
        assert_eq!(first.spki_sha256.len(), 43);
        let key = rcgen::KeyPair::from_pem(&pem).expect("key.pem parses");
        assert_eq!(
            rcgen::PublicKeyData::subject_public_key_info(&key),
            first.spki_der
        );
        // The CSR is for the names and the key.
        let csr = csr::parse(&first.csr).expect("a CSR the server accepts");
        assert_eq!(csr.names, names());
        assert_eq!(URL_SAFE_NO_PAD.encode(csr.spki_sha256), first.spki_sha256);

        let KeyStep::Keep(second) = prepare(&out, None, Rotation::default()) else {
            panic!("no rotation asked for");
        };
        assert_eq!(second.spki_sha256, first.spki_sha256, "the same key");
        assert_eq!(fs::read_to_string(out.path(KEY)).expect("key.pem"), pem);
        assert!(!out.path(NEXT_KEY).exists());
    }

    #[test]
    fn key_type_chooses_a_made_key_and_warns_about_the_key_in_use() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = OutDir::open(tmp.path()).expect("open");
        let step = prepare(&out, Some(KeyType::EcdsaP384), Rotation::default());
        assert_eq!(step.key().algorithm, "ecdsa-p384");

        let mut warnings = Vec::new();
        let rsa = Some(KeyType::Rsa2048);
        let step = KeyStep::prepare(&out, &names(), rsa, Rotation::default(), &mut warnings)
            .expect("prepare");
        assert_eq!(step.key().algorithm, "ecdsa-p384", "the key in use is kept");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("--key-type rsa-2048: ")
                && warnings[0].contains("--rotate-key"),
            "{warnings:?}"
        );

        // A rotation keeps the current key's type unless --key-type says otherwise.
        let KeyStep::Rotate { next, .. } = prepare(&out, None, NOW) else {
            panic!("--rotate-key rotates");
        };
        assert_eq!(next.algorithm, "ecdsa-p384");
    }

    #[test]
    fn a_rotation_makes_its_key_once_and_resumes_with_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = OutDir::open(tmp.path()).expect("open");
        let old = prepare(&out, None, Rotation::default()).key().clone();
        let old_pem = fs::read_to_string(out.path(KEY)).expect("key.pem");

        let step = prepare(&out, None, NOW);
        let KeyStep::Rotate {
            current: Some(current),
            next,
        } = &step
        else {
            panic!("--rotate-key rotates: {step:?}");
        };
        assert_eq!(current.spki_sha256, old.spki_sha256);
        assert_ne!(next.spki_sha256, old.spki_sha256, "a new key");
        assert_eq!(mode(&out, NEXT_KEY), 0o600);
        assert_eq!(
            fs::read_to_string(out.path(KEY)).expect("key.pem"),
            old_pem,
            "key.pem stays until the new certificate is in"
        );
        let Ask::Rotation {
            spki_sha256,
            replaces,
            ..
        } = step.ask()
        else {
            panic!("a rotation orders for the new key");
        };
        assert_eq!(spki_sha256, next.spki_sha256);
        assert_eq!(replaces, Some(old.spki_sha256.as_str()));
        let next_pem = fs::read_to_string(out.path(NEXT_KEY)).expect("next key");

        // Interrupted: the next runs order with that same key, asked to rotate or not.
        for rotation in [NOW, Rotation::default()] {
            let again = prepare(&out, None, rotation);
            assert!(again.rotating(), "{again:?}");
            assert_eq!(again.key().spki_sha256, next.spki_sha256);
            assert_eq!(
                fs::read_to_string(out.path(NEXT_KEY)).expect("next key"),
                next_pem
            );
        }

        // Without key.pem, the rotation goes on and replaces nothing.
        fs::remove_file(out.path(KEY)).expect("remove key.pem");
        let orphan = prepare(&out, None, Rotation::default());
        assert_eq!(orphan.key().spki_sha256, next.spki_sha256);
        assert!(matches!(orphan.ask(), Ask::Rotation { replaces: None, .. }));
    }

    #[test]
    fn rotate_every_waits_for_that_many_renewals_of_the_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = OutDir::open(tmp.path()).expect("open");
        let every = Rotation {
            now: false,
            every: 2,
        };
        let step = prepare(&out, None, every);
        let receive = |step: &KeyStep, serial: &str| {
            let bundle = Bundle {
                leaf_pem: format!("leaf {serial}\n"),
                chain_pem: String::new(),
                fullchain_pem: String::new(),
                key_pem: None,
                serial: serial.to_owned(),
                not_after: String::new(),
            };
            out.install(&bundle, Some(step.client_key()), None, false)
                .expect("install");
        };
        // The first certificate and one renewal: not yet.
        for serial in ["01", "02"] {
            receive(&step, serial);
            assert!(!prepare(&out, None, every).rotating(), "after {serial}");
        }
        // The second renewal: due.
        receive(&step, "03");
        let rotation = prepare(&out, None, every);
        assert!(rotation.rotating());
        // Its certificate in place, the new key starts at zero.
        receive(&rotation, "04");
        let step = prepare(&out, None, every);
        assert!(!step.rotating(), "{step:?}");
        assert_eq!(step.key().spki_sha256, rotation.key().spki_sha256);
    }

    #[test]
    fn a_damaged_key_file_is_named_and_never_quoted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = OutDir::open(tmp.path()).expect("open");
        let damaged = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0c2VjcmV0\n-----END PRIVATE KEY-----\n";
        out.write_private(KEY, damaged).expect("write");
        let err =
            KeyStep::prepare(&out, &names(), None, NOW, &mut Vec::new()).expect_err("not a key");
        assert!(matches!(err, LocalKeyError::NotAKey { .. }), "{err:?}");
        let line = err.to_string();
        assert!(line.contains("key.pem: not a PEM private key"), "{line}");
        assert!(line.contains("move it away"), "{line}");
        assert!(!line.contains("c2VjcmV0"), "{line}");
        assert!(
            !out.path(NEXT_KEY).exists(),
            "no rotation from a key that cannot be read"
        );
    }
}
