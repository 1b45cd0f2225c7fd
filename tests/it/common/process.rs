//! Child processes the tests run for real: the certfleet binary itself (`certfleet serve`), and
//! the components it talks to (Pebble, pebble-challtestsrv, BIND, the OIDC provider). One type
//! for all of them: the output is drained into a log by threads (so the pipes never fill up and
//! block the child), the child is killed and reaped on `Drop`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A running child process with its stdout and stderr collected, line by line, into one log.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: Arc<Mutex<String>>,
    drains: [JoinHandle<()>; 2],
}

impl Process {
    /// Spawns `command` (stdin closed, stdout and stderr collected). `name` is what messages
    /// call it; the caller turns a spawn error into its own install hint.
    pub fn spawn(name: &str, command: &mut Command) -> std::io::Result<Process> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let drains = [
            drain(stdout, Arc::clone(&log)),
            drain(stderr, Arc::clone(&log)),
        ];
        Ok(Process {
            name: name.to_owned(),
            child,
            log,
            drains,
        })
    }

    /// What messages call it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id (to read its memory under /proc: benches/watch.rs).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process has written so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Blocks until a line of the log contains `needle`; panics with the log after `timeout`,
    /// or as soon as the process has exited and all its output is read without it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            // Whether everything was read is taken before the log is searched: output read
            // after the search is searched on the next turn.
            let read_all = self.drains.iter().all(JoinHandle::is_finished);
            if self.log().lines().any(|line| line.contains(needle)) {
                return;
            }
            let exited = self.exit_status().filter(|_| read_all);
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{} never printed {needle:?} (exited: {exited:?}); it printed:\n{}",
                self.name,
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.name))
    }

    /// SIGKILL and reap: no cleanup of any kind runs in the child.
    pub fn kill(&mut self) {
        // Already exited is fine: kill fails then, and wait returns the saved status.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Appends each line of `pipe` to `log` until EOF (the child exited).
fn drain(pipe: impl Read + Send + 'static, log: Arc<Mutex<String>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => log
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&line)),
            }
        }
    })
}

/// `certfleet --config <config> serve`, the real binary as an operator starts it, with its log
/// collected. `rust_log` sets `RUST_LOG` (`None`: the config's `log.level` decides, as in
/// production); with `failpoint`, the binary stops for good at that step of an order
/// (`CERTFLEET_FAILPOINT`, see `certfleet::util::failpoint`).
pub fn serve(config: &Path, rust_log: Option<&str>, failpoint: Option<&str>) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certfleet"));
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env_remove("RUST_LOG")
        .env_remove("CERTFLEET_FAILPOINT");
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    if let Some(point) = failpoint {
        command.env("CERTFLEET_FAILPOINT", point);
    }
    Process::spawn("certfleet", &mut command).expect("start the certfleet binary")
}

/// Polls `base`'s `/readyz` until it answers 200; panics with `server`'s log after 20 s.
#[allow(dead_code)] // not every crate including this harness starts the binary
pub async fn wait_ready(client: &reqwest::Client, base: &str, server: &Process) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "{} did not become ready:\n{}",
            server.name(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
