//! The recipes of docs/recipes/ with real servers (bookworm's nginx 1.22 and HAProxy 2.6): each
//! serves the Pebble-issued certificate `certfleet fetch` wrote, as `openssl s_client` sees it,
//! and the renewed one after a forced renewal; nginx through `--exec 'nginx -s reload'` (and no
//! reload when nothing changed), HAProxy through the hook script of docs/recipes/haproxy.md
//! (its runtime API) with the HAProxy process unchanged.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

use crate::common;
use common::service::{ADMIN_KEY, Service};
use common::{Pebble, PebbleOptions, free_port};

/// Runs the real `certfleet fetch ARGS`, credentials and proxies from the test's environment
/// removed; `--wait 60s` bounds it. Panics when it fails.
async fn fetch(args: Vec<String>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certfleet"));
    command.arg("fetch").args(args).args(["--wait", "60s"]);
    for name in [
        "CERTFLEET_API_KEY",
        "CERTFLEET_TOKEN",
        "CERTFLEET_CONFIG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        command.env_remove(name);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the blocking task")
        .expect("run certfleet fetch");
    assert!(output.status.success(), "fetch failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Where a program the test needs is: on PATH or in /usr/sbin; missing, the test fails.
fn program(name: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("{name} is missing: scripts/install-test-deps.sh installs it (Debian package {name})");
}

/// A server process started by the test, killed when dropped.
struct Server {
    child: Child,
}

impl Drop for Server {
    /// SIGTERM, so that nginx's master stops its workers too (a SIGKILL would orphan them).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Server {
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The serial (`serial=...`) of the certificate served on `port` for SNI `name`, if any.
fn served_serial(port: u16, name: &str) -> Option<String> {
    let connect = format!("127.0.0.1:{port}");
    let shown = Command::new("openssl")
        .args(["s_client", "-connect", &connect, "-servername", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl is needed (scripts/install-test-deps.sh installs it)");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl x509");
    use std::io::Write as _;
    x509.stdin
        .take()
        .expect("stdin")
        .write_all(&shown.stdout)
        .expect("pipe");
    let out: Output = x509.wait_with_output().expect("openssl x509");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The serial of a PEM certificate file.
fn file_serial(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(path)
        .output()
        .expect("openssl x509");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits (up to 15 s) until `port` serves `serial` for `name`.
async fn wait_for_serial(port: u16, name: &str, serial: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let served = tokio::task::spawn_blocking({
            let name = name.to_owned();
            move || served_serial(port, &name)
        })
        .await
        .expect("task");
        if served.as_deref() == Some(serial) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {port} serves {served:?}, not {serial}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Scratch {
    tmp: TempDir,
}

impl Scratch {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("certfleet-recipe-")
            .tempdir()
            .expect("tempdir");
        Self { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str, mode: u32) -> String {
        std::fs::write(self.path(name), text).expect("write");
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
        self.s(name)
    }

    fn lines(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path(name))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

async fn renew(service: &Service, name: &str) {
    let renewed = service
        .post(
            "/api/certificate/renew",
            ADMIN_KEY,
            json!({"domains": [name]}),
        )
        .await;
    assert_eq!(renewed.status(), 200);
}

#[tokio::test]
async fn nginx_serves_the_fetched_certificate_and_the_renewed_one_after_exec_reloads_it() {
    let nginx = program("nginx");
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let scratch = Scratch::new();
    let name = "nginx.recipe.example.test";
    let key_file = scratch.write("api-key", &format!("{ADMIN_KEY}\n"), 0o600);
    let out = scratch.s("out");
    let port = free_port();
    std::fs::create_dir(scratch.path("nginx")).expect("nginx dir");
    let prefix = scratch.s("nginx");
    let conf = scratch.write(
        "nginx/nginx.conf",
        &format!(
            "daemon off;\n\
             pid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log;\n\
             events {{}}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {prefix}/body;\n\
               proxy_temp_path {prefix}/proxy;\n\
               fastcgi_temp_path {prefix}/fastcgi;\n\
               uwsgi_temp_path {prefix}/uwsgi;\n\
               scgi_temp_path {prefix}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port} ssl;\n\
                 server_name {name};\n\
                 ssl_certificate     {out}/fullchain.pem;\n\
                 ssl_certificate_key {out}/key.pem;\n\
                 return 200 \"ok\\n\";\n\
               }}\n\
             }}\n"
        ),
        0o644,
    );
    // The recipe's --exec, with this test's nginx configuration, and a count of reloads.
    let reload = format!(
        "{nginx} -p {prefix} -c {conf} -t -q && {nginx} -p {prefix} -c {conf} -s reload && echo reload >> {}",
        scratch.s("reloads"),
        nginx = nginx.display()
    );
    let args = strings(&[
        "--server",
        &service.base,
        "--domain",
        name,
        "--out",
        &out,
        "--api-key-file",
        &key_file,
        "--exec",
        &reload,
    ]);

    // The first fetch, before nginx starts (its configuration names the files): the --exec's
    // reload fails (no nginx yet) and is owed; nginx then starts with the files.
    let mut first = Command::new(env!("CARGO_BIN_EXE_certfleet"));
    first
        .arg("fetch")
        .args(&args)
        .args(["--wait", "60s"])
        .env_remove("CERTFLEET_API_KEY");
    // Off the runtime's thread: the in-process service answers on it.
    let first = tokio::task::spawn_blocking(move || first.output())
        .await
        .expect("task")
        .expect("first fetch");
    assert!(!first.status.success(), "no nginx to reload yet: {first:?}");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("were updated, but --exec"), "{stderr}");
    let mut server = Server {
        child: Command::new(&nginx)
            .args(["-p", &prefix, "-c", &conf, "-e"])
            .arg(format!("{prefix}/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx"),
    };
    let serial = file_serial(&scratch.path("out/cert.pem"));
    wait_for_serial(port, name, &serial).await;

    // The owed --exec runs once (nginx now there); then a run with nothing changed: no reload.
    fetch(args.clone()).await;
    assert_eq!(scratch.lines("reloads"), 1, "the owed reload ran");
    let quiet = fetch(args.clone()).await;
    assert_eq!(quiet, "", "nothing changed");
    assert_eq!(scratch.lines("reloads"), 1, "no reload without a change");

    // A forced renewal, the same fetch: nginx reloads and serves the new serial.
    renew(&service, name).await;
    let wrote = fetch(args.clone()).await;
    assert!(wrote.contains("wrote"), "{wrote}");
    assert_eq!(scratch.lines("reloads"), 2);
    let renewed = file_serial(&scratch.path("out/cert.pem"));
    assert_ne!(renewed, serial);
    wait_for_serial(port, name, &renewed).await;
    assert!(server.running(), "nginx reloaded, not restarted");

    // The recipe's long-running form: `certfleet fetch --watch` with the same --exec. Nothing
    // changes: no reload. A new certificate (the identity deleted and asked again: a forced
    // renewal is once an hour) is served by nginx within seconds, with no other run.
    let mut watching = Command::new(env!("CARGO_BIN_EXE_certfleet"));
    watching
        .arg("fetch")
        .args(&args)
        .args(["--watch", "--watch-hold", "30s"])
        .env_remove("CERTFLEET_API_KEY");
    let watcher =
        common::process::Process::spawn("certfleet fetch --watch", &mut watching).expect("start");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(scratch.lines("reloads"), 2, "no reload without a change");
    let deleted = service
        .delete(&format!("/api/certificate?domain={name}"), ADMIN_KEY)
        .await;
    assert_eq!(deleted.status(), 200);
    let reissued = service
        .post("/api/certificate", ADMIN_KEY, json!({"domain": name}))
        .await;
    assert_eq!(reissued.status(), 200);
    let since = Instant::now();
    let deadline = since + Duration::from_secs(10);
    let newest = loop {
        let on_disk = file_serial(&scratch.path("out/cert.pem"));
        if on_disk != renewed {
            break on_disk;
        }
        assert!(
            Instant::now() < deadline,
            "--watch did not write the new certificate:\n{}",
            watcher.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    wait_for_serial(port, name, &newest).await;
    let served_after = since.elapsed();
    println!("nginx served the new certificate {served_after:?} after it was issued (--watch)");
    assert!(served_after < Duration::from_secs(5), "{served_after:?}");
    assert_eq!(scratch.lines("reloads"), 3, "one reload for the change");
    assert!(server.running());
}

/// The hook script of docs/recipes/haproxy.md: its code block starting with `#!/bin/sh`.
fn haproxy_hook() -> String {
    let recipe = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/recipes/haproxy.md"),
    )
    .expect("docs/recipes/haproxy.md");
    let start = recipe
        .find("```sh\n#!/bin/sh\n")
        .expect("a ```sh block starting with #!/bin/sh in the recipe")
        + "```sh\n".len();
    let len = recipe[start..].find("```").expect("the block's end");
    recipe[start..start + len].to_owned()
}

/// HAProxy's `Pid:` as its runtime API's `show info` reports it.
fn haproxy_pid(socket: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo 'show info' | socat -t 5 - UNIX-CONNECT:{socket}"
        ))
        .output()
        .expect("socat is needed (scripts/install-test-deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("Pid: "))
        .unwrap_or_else(|| panic!("no Pid in show info: {text}"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn haproxy_takes_the_renewed_certificate_over_its_runtime_api_without_a_reload() {
    let haproxy = program("haproxy");
    program("socat");
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let scratch = Scratch::new();
    let name = "haproxy.recipe.example.test";
    let key_file = scratch.write("api-key", &format!("{ADMIN_KEY}\n"), 0o600);
    let out = scratch.s("out");
    let hook = scratch.write("certfleet-haproxy-hook", &haproxy_hook(), 0o755);
    let socket = scratch.s("admin.sock");
    let exec = format!(
        "HAPROXY_SOCKET={socket} {hook} && echo hook >> {}",
        scratch.s("hooks")
    );
    let args = strings(&[
        "--server",
        &service.base,
        "--domain",
        name,
        "--out",
        &out,
        "--api-key-file",
        &key_file,
        "--combined",
    ]);

    // The first fetch without the hook: HAProxy needs the file to start.
    fetch(args.clone()).await;
    let port = free_port();
    let conf = scratch.write(
        "haproxy.cfg",
        &format!(
            "global\n\
             \x20   stats socket {socket} mode 600 level admin\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 5s\n\
             \x20   timeout client 5s\n\
             \x20   timeout server 5s\n\
             frontend tls\n\
             \x20   bind 127.0.0.1:{port} ssl crt {out}/combined.pem\n\
             \x20   http-request return status 200 content-type text/plain string ok\n"
        ),
        0o644,
    );
    let mut server = Server {
        child: Command::new(&haproxy)
            .args(["-db", "-f", &conf])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy"),
    };
    let serial = file_serial(&scratch.path("out/cert.pem"));
    wait_for_serial(port, name, &serial).await;
    let pid = haproxy_pid(&socket);
    assert_eq!(pid, server.child.id().to_string());

    // With the hook: nothing changed, so it does not run.
    let mut hooked = args.clone();
    hooked.extend(strings(&["--exec", &exec]));
    fetch(hooked.clone()).await;
    assert_eq!(scratch.lines("hooks"), 0, "no hook without a change");

    // A forced renewal: the hook hands combined.pem to HAProxy, which serves it, same process.
    renew(&service, name).await;
    fetch(hooked.clone()).await;
    assert_eq!(scratch.lines("hooks"), 1);
    let renewed = file_serial(&scratch.path("out/cert.pem"));
    assert_ne!(renewed, serial);
    wait_for_serial(port, name, &renewed).await;
    assert!(server.running(), "HAProxy still running");
    assert_eq!(haproxy_pid(&socket), pid, "the same HAProxy process");
}
