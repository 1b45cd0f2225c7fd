//! The output directory: `cert.pem`, `chain.pem`, `fullchain.pem`, `key.pem`, `.etag`, plus
//! `.lock` (one run at a time) and `.exec-pending` (an `--exec` still owed); with `--key local`
//! also `.key.next.pem` (a rotation's new key) and `.renewals` (the serials of the current key).
//!
//! Each file is replaced atomically: a new file in the same directory (the key's created with
//! mode 0600, so it is never readable by others, not even while being written), written,
//! fsynced, then renamed over the old one. Every changed file is written before the first
//! rename, so a full disk or a failed write leaves all the old files in place; a rotation's
//! `.key.next.pem` is renamed over `key.pem` after the certificates; `.etag` goes last, so a
//! crash in between only costs one more full download.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::bundle::Bundle;

/// The leaf.
pub(super) const CERT: &str = "cert.pem";
/// The intermediates.
pub(super) const CHAIN: &str = "chain.pem";
/// Leaf + intermediates: what most servers want.
pub(super) const FULLCHAIN: &str = "fullchain.pem";
/// The private key, mode 0600.
pub(super) const KEY: &str = "key.pem";
/// The `ETag` of the certificate in the files.
pub(super) const ETAG: &str = ".etag";
/// With `--key local`: the new key of a rotation under way, mode 0600, until a certificate for
/// it is in place.
pub(super) const NEXT_KEY: &str = ".key.next.pem";
/// With `--key local`: the current key's spkiSha256, then every serial received for it, one a
/// line (for `--rotate-every`).
const RENEWALS: &str = ".renewals";
/// Held (`flock`) while a run writes the directory.
const LOCK: &str = ".lock";
/// Present while an `--exec` is owed for files already written.
const EXEC_PENDING: &str = ".exec-pending";

/// Mode of the certificate files (the umask still applies).
const PUBLIC: u32 = 0o644;
/// Mode of the key file and the bookkeeping files.
const PRIVATE: u32 = 0o600;

/// Why the output directory could not be opened or updated; each names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// `--out` cannot be made ready (created, locked).
    #[error("--out {}: {problem}", .dir.display())]
    Open {
        dir: PathBuf,
        #[source]
        problem: OpenProblem,
    },
    /// No random name for a staged file.
    #[error("the system's random source failed")]
    Random {
        source: aws_lc_rs::error::Unspecified,
    },
    /// Reading a file of the directory.
    #[error("reading {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Creating, writing or fsyncing a staged file.
    #[error("writing {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    /// Renaming a staged file over its target.
    #[error("renaming {} to {}: {source}", .from.display(), .to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    /// Removing `.etag` or `.exec-pending`.
    #[error("removing {}: {source}", .path.display())]
    Remove { path: PathBuf, source: io::Error },
}

/// What stopped [`OutDir::open`].
#[derive(Debug, thiserror::Error)]
pub enum OpenProblem {
    /// The directory was missing and cannot be created.
    #[error("cannot create the directory: {0}")]
    Create(#[source] io::Error),
    /// The path is something else than a directory.
    #[error("not a directory")]
    NotADirectory,
    /// The lock file cannot be opened.
    #[error("cannot open {LOCK}: {0}")]
    OpenLock(#[source] io::Error),
    /// Another run holds the lock.
    #[error("another certfleet fetch is writing this directory; run again when it is done")]
    Busy,
    /// Taking the lock failed for another reason than contention.
    #[error("cannot lock {LOCK}: {0}")]
    Lock(#[source] io::Error),
}

/// A file of `--format p12` or `--combined`, mode 0600 (it holds the key).
#[derive(Debug)]
pub(super) struct Extra {
    /// Its name in the directory.
    pub(super) name: &'static str,
    /// Its content.
    pub(super) content: Vec<u8>,
    /// Salted afresh on every rendering (PKCS#12): written only when a PEM file changed or it
    /// is missing, never compared by content.
    pub(super) salted: bool,
}

/// With `--key local`, what [`OutDir::install`] is told about the certificate's key, which is
/// this machine's and not in the body.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientKey<'a> {
    /// The key's spkiSha256: `.renewals` counts the serials of this key.
    pub(super) spki_sha256: &'a str,
    /// The key is `.key.next.pem`'s: renamed over `key.pem` once the certificates are in place.
    pub(super) rotating: bool,
}

/// The output directory, locked against a concurrent run for as long as this value lives.
#[derive(Debug)]
pub(super) struct OutDir {
    path: PathBuf,
    _lock: File,
}

impl OutDir {
    /// Creates the directory (mode 0700) if missing and takes its lock.
    pub(super) fn open(path: &Path) -> Result<Self, FilesError> {
        let lock = lock(path).map_err(|problem| FilesError::Open {
            dir: path.to_owned(),
            problem,
        })?;
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The stored `ETag`, only when all four files are there to match it.
    pub(super) fn etag(&self) -> Option<String> {
        if ![CERT, CHAIN, FULLCHAIN, KEY]
            .iter()
            .all(|name| self.path.join(name).is_file())
        {
            return None;
        }
        let text = fs::read_to_string(self.path.join(ETAG)).ok()?;
        let tag = text.trim();
        // Sent back as a header: anything else is a damaged file, and a full GET repairs it.
        let usable = !tag.is_empty() && tag.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        usable.then(|| tag.to_owned())
    }

    /// Writes the files whose content differs (`key.pem` only with a key from the server);
    /// with `client_key` rotating, renames `.key.next.pem` over `key.pem` after them; with
    /// `client_key`, records the serial in `.renewals`; then `.etag` (removed when the server
    /// sent none). With `exec`, marks an `--exec` owed before the first rename. Returns whether
    /// any PEM file changed.
    #[cfg(test)]
    pub(super) fn install(
        &self,
        bundle: &Bundle,
        client_key: Option<ClientKey<'_>>,
        etag: Option<&str>,
        exec: bool,
    ) -> Result<bool, FilesError> {
        self.install_with(bundle, &[], client_key, etag, exec)
    }

    /// [`install`](Self::install) with the `extras` of `--format p12` / `--combined`, staged
    /// and renamed with the PEM files: a salted one when any PEM file changes or it is
    /// missing, the others when their content differs.
    pub(super) fn install_with(
        &self,
        bundle: &Bundle,
        extras: &[Extra],
        client_key: Option<ClientKey<'_>>,
        etag: Option<&str>,
        exec: bool,
    ) -> Result<bool, FilesError> {
        let mut files = vec![
            (CERT, bundle.leaf_pem.as_bytes(), PUBLIC),
            (CHAIN, bundle.chain_pem.as_bytes(), PUBLIC),
            (FULLCHAIN, bundle.fullchain_pem.as_bytes(), PUBLIC),
        ];
        if let Some(key) = &bundle.key_pem {
            files.push((KEY, key.as_bytes(), PRIVATE));
        }
        let mut stale: Vec<_> = files
            .iter()
            .filter(|(name, content, _)| !self.holds_bytes(name, content))
            .copied()
            .collect();
        let rotating = client_key.is_some_and(|key| key.rotating);
        let pem_changed = !stale.is_empty() || rotating;
        for extra in extras {
            let write = if extra.salted {
                pem_changed || !self.path.join(extra.name).is_file()
            } else {
                !self.holds_bytes(extra.name, &extra.content)
            };
            if write {
                stale.push((extra.name, extra.content.as_slice(), PRIVATE));
            }
        }
        let changed = !stale.is_empty() || rotating;
        if changed {
            let staged = stale
                .iter()
                .map(|(name, content, mode)| self.stage(name, content, *mode))
                .collect::<Result<Vec<_>, _>>()?;
            if exec {
                self.stage(EXEC_PENDING, b"", PRIVATE)?.commit()?;
            }
            for file in staged {
                file.commit()?;
            }
            if rotating {
                self.promote_next_key()?;
            }
            sync_dir(&self.path);
        }
        if let Some(key) = client_key {
            self.count_serial(key, &bundle.serial)?;
        }
        self.write_etag(etag)?;
        sync_dir(&self.path);
        Ok(changed)
    }

    /// Writes `.etag`, or removes it when the server sent no tag.
    fn write_etag(&self, etag: Option<&str>) -> Result<(), FilesError> {
        let Some(tag) = etag else {
            return self.remove(ETAG);
        };
        let line = format!("{tag}\n");
        if !self.holds(ETAG, &line) {
            self.stage(ETAG, line.as_bytes(), PUBLIC)?.commit()?;
        }
        Ok(())
    }

    /// A rotation's last step: the new key, whose certificate is in place now, becomes
    /// `key.pem`.
    fn promote_next_key(&self) -> Result<(), FilesError> {
        let (from, to) = (self.path.join(NEXT_KEY), self.path.join(KEY));
        fs::rename(&from, &to).map_err(|source| FilesError::Rename { from, to, source })
    }

    /// Records `serial` in `.renewals` for the key: added to the key's serials, or the first
    /// of a new list after a rotation (or when the file is about another key).
    fn count_serial(&self, key: ClientKey<'_>, serial: &str) -> Result<(), FilesError> {
        let mut serials = if key.rotating {
            Vec::new()
        } else {
            self.serials(key.spki_sha256)
        };
        if !serials.iter().any(|known| known == serial) {
            serials.push(serial.to_owned());
        }
        let text: String = std::iter::once(key.spki_sha256)
            .chain(serials.iter().map(String::as_str))
            .map(|line| format!("{line}\n"))
            .collect();
        if !self.holds(RENEWALS, &text) {
            self.stage(RENEWALS, text.as_bytes(), PUBLIC)?.commit()?;
        }
        Ok(())
    }

    /// The serials `.renewals` records for the key `spki_sha256`; none when the file is
    /// missing, unreadable or about another key.
    fn serials(&self, spki_sha256: &str) -> Vec<String> {
        let text = fs::read_to_string(self.path.join(RENEWALS)).unwrap_or_default();
        let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
        if lines.next() != Some(spki_sha256) {
            return Vec::new();
        }
        lines.map(str::to_owned).collect()
    }

    /// How many renewals the key `spki_sha256` has been through: its distinct serials less
    /// the first certificate.
    pub(super) fn renewals(&self, spki_sha256: &str) -> u32 {
        let serials = self.serials(spki_sha256).len().saturating_sub(1);
        u32::try_from(serials).unwrap_or(u32::MAX)
    }

    /// Whether `name` holds exactly `content`.
    fn holds(&self, name: &str, content: &str) -> bool {
        self.holds_bytes(name, content.as_bytes())
    }

    /// Whether `name` holds exactly the bytes `content`.
    fn holds_bytes(&self, name: &str, content: &[u8]) -> bool {
        fs::read(self.path.join(name)).ok().as_deref() == Some(content)
    }

    /// A file of the directory, as messages name it.
    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The text of `name`, or `None` when there is no such file.
    pub(super) fn read(&self, name: &str) -> Result<Option<String>, FilesError> {
        let path = self.path.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FilesError::Read { path, source }),
        }
    }

    /// Writes a key made here as `name`, mode 0600 from creation, atomically.
    pub(super) fn write_private(&self, name: &str, content: &str) -> Result<(), FilesError> {
        self.stage(name, content.as_bytes(), PRIVATE)?.commit()?;
        sync_dir(&self.path);
        Ok(())
    }

    /// Whether an `--exec` is owed from an earlier run.
    pub(super) fn exec_pending(&self) -> bool {
        self.path.join(EXEC_PENDING).exists()
    }

    /// The owed `--exec` has run.
    pub(super) fn clear_exec_pending(&self) -> Result<(), FilesError> {
        self.remove(EXEC_PENDING)
    }

    /// Writes `content` into a new file beside `name` with `mode` from creation, fsynced.
    fn stage(&self, name: &str, content: &[u8], mode: u32) -> Result<Staged, FilesError> {
        let mut nonce = [0u8; 8];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|source| FilesError::Random { source })?;
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let temp = self.path.join(format!(".{name}.{nonce}.tmp"));
        let failed = |source| FilesError::Write {
            path: temp.clone(),
            source,
        };
        let mut file = options(mode).create_new(true).open(&temp).map_err(failed)?;
        let staged = Staged {
            temp: temp.clone(),
            target: self.path.join(name),
            committed: false,
        };
        file.write_all(content).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        Ok(staged)
    }

    fn remove(&self, name: &str) -> Result<(), FilesError> {
        let path = self.path.join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(FilesError::Remove { path, source }),
        }
    }
}

/// Creates `path` (mode 0700) if missing and takes its lock: one run at a time.
fn lock(path: &Path) -> Result<File, OpenProblem> {
    if !path.exists() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(path).map_err(OpenProblem::Create)?;
    }
    if !path.is_dir() {
        return Err(OpenProblem::NotADirectory);
    }
    let lock = options(PRIVATE)
        .create(true)
        .truncate(false)
        .open(path.join(LOCK))
        .map_err(OpenProblem::OpenLock)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(OpenProblem::Busy),
        Err(TryLockError::Error(e)) => Err(OpenProblem::Lock(e)),
    }
}

/// A written, fsynced file waiting to be renamed over its target; removed if never committed.
#[derive(Debug)]
struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    fn commit(mut self) -> Result<(), FilesError> {
        fs::rename(&self.temp, &self.target).map_err(|source| FilesError::Rename {
            from: self.temp.clone(),
            to: self.target.clone(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Write-only options creating files with `mode` (less the umask) on Unix.
fn options(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options
}

/// Makes the renames durable. Best effort: some filesystems refuse fsync on a directory, and
/// the files themselves are already on disk.
fn sync_dir(path: &Path) {
    if let Ok(dir) = File::open(path) {
        let _ = dir.sync_all();
    }
}

/// Whether every user may read the file (a secret file should not be).
pub(super) fn world_readable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(tag: &str) -> Bundle {
        Bundle {
            leaf_pem: format!("leaf {tag}\n"),
            chain_pem: format!("chain {tag}\n"),
            fullchain_pem: format!("full {tag}\n"),
            key_pem: Some(format!("key {tag}\n")),
            serial: format!("0{tag}"),
            not_after: String::new(),
        }
    }

    #[test]
    fn install_writes_only_what_changed_with_private_key_mode() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("certs");
        let out = OutDir::open(&path).expect("open");
        assert_eq!(out.etag(), None);
        assert!(
            out.install(&bundle("1"), None, Some("\"e1\""), true)
                .expect("first")
        );
        assert!(out.exec_pending());
        out.clear_exec_pending().expect("clear");
        assert_eq!(out.etag().as_deref(), Some("\"e1\""));
        let mode = |name: &str| {
            fs::metadata(path.join(name))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY), 0o600);
        assert_eq!(mode(CERT) & 0o022, 0, "not writable by others");
        assert_eq!(mode(".") & 0o077, 0, "the directory is created 0700");

        // Same content, new tag: no PEM rewritten, the tag updated, nothing owed.
        assert!(
            !out.install(&bundle("1"), None, Some("\"e2\""), true)
                .expect("same")
        );
        assert!(!out.exec_pending());
        assert_eq!(out.etag().as_deref(), Some("\"e2\""));

        // No tag from the server: the old one goes, so the next run asks unconditionally.
        assert!(
            out.install(&bundle("2"), None, None, false)
                .expect("changed")
        );
        assert_eq!(out.etag(), None);
        assert_eq!(fs::read_to_string(path.join(KEY)).expect("key"), "key 2\n");

        let leftovers: Vec<_> = fs::read_dir(&path)
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// A bundle as `--key local` gets it: no key from the server.
    fn local_bundle(tag: &str) -> Bundle {
        Bundle {
            key_pem: None,
            ..bundle(tag)
        }
    }

    #[test]
    fn a_local_key_is_kept_its_serials_counted_and_a_rotation_replaces_it() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = OutDir::open(tmp.path()).expect("open");
        let read = |name: &str| fs::read_to_string(tmp.path().join(name)).expect("read");
        out.write_private(KEY, "old key\n").expect("key");
        let old = ClientKey {
            spki_sha256: "old",
            rotating: false,
        };
        assert!(
            out.install(&local_bundle("1"), Some(old), Some("\"e1\""), false)
                .expect("first")
        );
        assert_eq!(read(KEY), "old key\n", "key.pem is left as it is");
        assert_eq!(out.renewals("old"), 0, "a first certificate is no renewal");
        assert_eq!(out.etag().as_deref(), Some("\"e1\""));
        // The same serial again counts once; two more are two renewals of that key only.
        for tag in ["1", "2", "3"] {
            out.install(&local_bundle(tag), Some(old), Some("\"e1\""), false)
                .expect("again");
        }
        assert_eq!(out.renewals("old"), 2);
        assert_eq!(out.renewals("other"), 0, "the count is the current key's");

        // A rotation: the certificates, then .key.next.pem becomes key.pem, the count restarts.
        out.write_private(NEXT_KEY, "new key\n").expect("next key");
        let new = ClientKey {
            spki_sha256: "new",
            rotating: true,
        };
        assert!(
            out.install(&local_bundle("4"), Some(new), Some("\"e4\""), true)
                .expect("rotation")
        );
        assert_eq!(read(KEY), "new key\n");
        assert_eq!(read(CERT), "leaf 4\n");
        assert!(!tmp.path().join(NEXT_KEY).exists(), "renamed, not copied");
        let mode = fs::metadata(tmp.path().join(KEY))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(out.renewals("new"), 0);
        assert_eq!(out.renewals("old"), 0);
        assert_eq!(out.etag().as_deref(), Some("\"e4\""));
        assert!(out.exec_pending(), "a new key is a change");

        // Interrupted after the certificates: the next run's same certificate still moves the
        // key, and that is a change (--exec runs).
        out.write_private(NEXT_KEY, "newer key\n")
            .expect("next key");
        let newer = ClientKey {
            spki_sha256: "newer",
            rotating: true,
        };
        assert!(
            out.install(&local_bundle("4"), Some(newer), None, false)
                .expect("resumed")
        );
        assert_eq!(read(KEY), "newer key\n");
    }

    #[test]
    fn the_etag_counts_only_with_all_four_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = OutDir::open(tmp.path()).expect("open");
        out.install(&bundle("1"), None, Some("\"e1\""), false)
            .expect("install");
        fs::remove_file(tmp.path().join(CHAIN)).expect("remove chain");
        assert_eq!(out.etag(), None);
    }

    #[test]
    fn a_second_run_on_the_same_directory_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let _first = OutDir::open(tmp.path()).expect("open");
        let err = OutDir::open(tmp.path()).expect_err("locked");
        assert!(
            matches!(
                err,
                FilesError::Open {
                    problem: OpenProblem::Busy,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("another certfleet fetch"), "{err}");
    }
}
