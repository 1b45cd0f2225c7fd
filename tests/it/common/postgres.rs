//! A real PostgreSQL server for the tests, as a child process killed on `Drop`.
//!
//! `initdb` and `postgres` come from Debian's `postgresql` package (`/usr/lib/postgresql/N/bin`,
//! installed by `scripts/install-test-deps.sh`). The server refuses to run as root, so when the
//! tests run as root both run as the `postgres` user, in a temporary directory that user owns:
//! `initdb` through `runuser`, the server spawned with that user's uid and gid directly, so the
//! child held here is the postmaster itself and `Drop` stops exactly it. It listens on a free
//! loopback port, with its Unix socket in the temporary directory, and requires a password
//! (SCRAM) over TCP, as a real deployment does. A missing installation fails the test with the
//! install command: it never skips.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tempfile::TempDir;

use super::ca::TestCa;

/// The role certfleet connects as (it owns the databases the tests create), and its password.
const ROLE: &str = "certfleet";
const ROLE_PASSWORD: &str = "role-password-for-tests";
/// The superuser's password (TCP connections need one).
const SUPERUSER_PASSWORD: &str = "superuser-password-for-tests";

/// A running PostgreSQL server; stopped and its directory removed on `Drop`.
#[derive(Debug)]
pub struct Postgres {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Postgres {
    /// Starts a server accepting plain TCP connections.
    pub async fn start() -> Postgres {
        Self::start_with(None).await
    }

    /// Starts a server that accepts TCP connections only over TLS, with `ca`'s leaf (valid for
    /// `localhost` and `127.0.0.1`) as its certificate.
    pub async fn start_tls(ca: &TestCa) -> Postgres {
        Self::start_with(Some(ca)).await
    }

    async fn start_with(tls: Option<&TestCa>) -> Postgres {
        let bin = bin_dir();
        let user = ServerUser::find();
        let mut dir = tempfile::Builder::new()
            .prefix("certfleet-pg-")
            .tempdir()
            .expect("create a temporary directory for PostgreSQL");
        user.own(dir.path());
        init(&bin, &user, dir.path(), tls);
        // A port found free may be taken before the server binds it: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = super::free_port();
            let child = spawn(&bin, &user, dir.path(), port, tls.is_some());
            let mut server = Postgres { child, port, dir };
            match server.wait_ready().await {
                Ok(()) => {
                    server.create_role().await;
                    return server;
                }
                Err(log) if log.contains("could not bind") || log.contains("already in use") => {
                    last_log = log;
                    dir = server.take_dir();
                }
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        panic!("PostgreSQL could not bind a loopback port in 3 tries:\n{last_log}");
    }

    /// Creates the database `name`, owned by the `certfleet` role, and returns its URL for that
    /// role (what `storage.url` holds), with `query` appended (e.g. `?sslmode=verify-full`).
    pub async fn create_database(&self, name: &str, query: &str) -> String {
        let mut conn = self.superuser("postgres").await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" OWNER {ROLE}"
        )))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        self.url(name, query)
    }

    /// The `certfleet` role's URL for database `name`, `query` appended.
    pub fn url(&self, name: &str, query: &str) -> String {
        format!(
            "postgres://{ROLE}:{ROLE_PASSWORD}@127.0.0.1:{}/{name}{query}",
            self.port
        )
    }

    /// A superuser connection to database `name`, over the Unix socket (trusted locally).
    pub async fn superuser(&self, name: &str) -> PgConnection {
        let options = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .socket(self.dir.path())
            .port(self.port)
            .username("postgres")
            .password(SUPERUSER_PASSWORD)
            .database(name);
        PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL as superuser: {e}\n{}", self.log()))
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let options = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .socket(self.dir.path())
            .port(self.port)
            .username("postgres")
            .database("postgres");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if let Ok(conn) = PgConnection::connect_with(&options).await {
                drop(conn.close().await);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 60 s:\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_role(&self) {
        let mut conn = self.superuser("postgres").await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'"
        )))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("create role {ROLE}: {e}"));
    }

    /// Stops the server and hands its directory back, for a retry on another port.
    fn take_dir(mut self) -> TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().expect("create a temporary directory");
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGQUIT is PostgreSQL's immediate shutdown: backends end at once and shared memory is
        // released, which a SIGKILL of the postmaster alone would leave behind.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest `/usr/lib/postgresql/N/bin` holding `initdb`.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb. These tests run a \
             real server: install it with `apt-get install -y postgresql` (or run \
             scripts/install-test-deps.sh)"
        ),
    }
}

/// Who runs the server: the `postgres` user when the tests run as root, else the current user.
struct ServerUser {
    /// `(uid, gid)` of `postgres` when switching to it.
    switch_to: Option<(u32, u32)>,
}

impl ServerUser {
    fn find() -> ServerUser {
        if id(&["-u"]) != 0 {
            return ServerUser { switch_to: None };
        }
        if !Command::new("id")
            .arg("postgres")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            panic!(
                "the tests run as root, and PostgreSQL refuses root, but there is no `postgres` \
                 user: install the server with `apt-get install -y postgresql`, which creates it"
            );
        }
        ServerUser {
            switch_to: Some((id(&["-u", "postgres"]), id(&["-g", "postgres"]))),
        }
    }

    fn own(&self, path: &Path) {
        if let Some((uid, gid)) = self.switch_to {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
        }
    }

    /// `program` as this user: through `runuser` when switching.
    fn command(&self, program: &Path) -> Command {
        match self.switch_to {
            Some(_) => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {args:?} printed no number"))
}

/// `initdb` into `dir/data`: SCRAM passwords over TCP, trust over the Unix socket (which only
/// this directory's owner can reach); with `tls`, the CA's leaf and TCP only over TLS.
fn init(bin: &Path, user: &ServerUser, dir: &Path, tls: Option<&TestCa>) {
    let pwfile = dir.join("superuser-password");
    write_owned(user, &pwfile, SUPERUSER_PASSWORD);
    let out = user
        .command(&bin.join("initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .current_dir(dir)
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(ca) = tls {
        write_owned(user, &dir.join("server.crt"), &read(ca.leaf_cert_path()));
        write_owned(user, &dir.join("server.key"), &read(ca.leaf_key_path()));
        write_owned(
            user,
            &dir.join("data/pg_hba.conf"),
            "local     all all                trust\n\
             hostssl   all all 127.0.0.1/32   scram-sha-256\n\
             hostnossl all all 0.0.0.0/0      reject\n",
        );
    }
}

fn spawn(bin: &Path, user: &ServerUser, dir: &Path, port: u16, tls: bool) -> Child {
    let log = fs::File::create(dir.join("server.log")).expect("create the server log");
    let mut command = Command::new(bin.join("postgres"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        // A throw-away database: durability only costs time here.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "shared_buffers=16MB"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log file"))
        .stderr(log);
    if tls {
        command.args([
            "-c",
            "ssl=on",
            "-c",
            &format!("ssl_cert_file={}", dir.join("server.crt").display()),
            "-c",
            &format!("ssl_key_file={}", dir.join("server.key").display()),
        ]);
    }
    if let Some((uid, gid)) = user.switch_to {
        command.uid(uid).gid(gid);
    }
    command.spawn().expect("spawn postgres")
}

/// Writes a 0600 file the server's user owns (PostgreSQL refuses a readable key file).
fn write_owned(user: &ServerUser, path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    user.own(path);
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
