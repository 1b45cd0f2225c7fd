//! docs/configuration.md cannot drift from the code.
//!
//! The reference documents each key in one table row whose first cell holds the key path and its
//! environment variable, both in backticks: `| `server.listen`<br>`CERTFLEET_SERVER__LISTEN` |`.
//! List items are written `[]` in paths and `<n>` in variables
//! (`challenges.dns01[].apiToken`, `CERTFLEET_CHALLENGES__DNS01__<n>__API_TOKEN`).
//!
//! The keys are asked of the real binary, never listed here by hand:
//! - every key the file format accepts, `...File` forms included, is found by probing
//!   `certfleet check-config` with an unknown key in each mapping: its error lists the valid keys
//!   of that mapping, and each of those is probed in turn;
//! - every key of the effective configuration that `check-config` prints for complete configs
//!   (every section on, every DNS provider, both `server.tls` forms).
//!
//! A key added to the code without a row fails the test, and so does a row for a key the code
//! does not know, or a row whose variable is not the key's (each variable is also given to the
//! binary, which must not call it unknown).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::{Value, json};

/// The key used to make `check-config` list a mapping's valid keys.
const PROBE: &str = "zzzDocsProbe";

/// One step of a key path.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    /// An item of a list (the first one when probing).
    Item,
}

fn doc_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs `certfleet check-config --config FILE` on `config` (JSON is YAML), with no `CERTFLEET_*`
/// variable but `vars`.
fn check_config(dir: &Path, config: &Value, vars: &[(String, String)]) -> Output {
    let file = dir.join("certfleet.yaml");
    fs::write(&file, config.to_string()).expect("write the config file");
    Command::new(env!("CARGO_BIN_EXE_certfleet"))
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run certfleet check-config")
}

/// The path as the reference writes it: `challenges.dns01[].apiToken`.
fn doc_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) if out.is_empty() => out.push_str(key),
            Seg::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Seg::Item => out.push_str("[]"),
        }
    }
    out
}

/// The path as `check-config` names it in errors: `challenges.dns01[0].apiToken`.
fn error_path(path: &[Seg]) -> String {
    doc_path(path).replace("[]", "[0]")
}

/// A config holding `leaf` at `path` and nothing else.
fn config_at(path: &[Seg], leaf: Value) -> Value {
    path.iter().rev().fold(leaf, |inner, seg| match seg {
        Seg::Key(key) => json!({ key.as_str(): inner }),
        Seg::Item => json!([inner]),
    })
}

/// The valid keys of the mapping at `path`, or `None` when `path` is not a mapping.
fn keys_of(dir: &Path, path: &[Seg]) -> Option<Vec<String>> {
    let output = check_config(dir, &config_at(path, json!({ PROBE: 1 })), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut probe = path.to_vec();
    probe.push(Seg::Key(PROBE.to_owned()));
    let marker = format!("{}: unknown key; expected one of ", error_path(&probe));
    let at = stderr.find(&marker)? + marker.len();
    let list = stderr[at..].lines().next().unwrap_or_default();
    Some(list.split(", ").map(str::to_owned).collect())
}

/// Every key path under the mapping at `path`, sections and list items included.
fn discover(dir: &Path, path: &[Seg], keys: Vec<String>, found: &mut BTreeSet<String>) {
    for key in keys {
        let mut child = path.to_vec();
        child.push(Seg::Key(key));
        found.insert(doc_path(&child));
        if let Some(keys) = keys_of(dir, &child) {
            discover(dir, &child, keys, found);
            continue;
        }
        let mut item = child.clone();
        item.push(Seg::Item);
        if let Some(keys) = keys_of(dir, &item) {
            discover(dir, &item, keys, found);
        }
    }
}

/// Every key path the binary accepts in a config file.
fn accepted_keys(dir: &Path) -> BTreeSet<String> {
    let top = keys_of(dir, &[]).expect(
        "check-config should refuse an unknown top-level key with \"unknown key; expected one \
         of ...\"; if that message changed, update keys_of in tests/it/docs.rs",
    );
    assert!(top.contains(&"server".to_owned()), "{top:?}");
    let mut found = BTreeSet::new();
    discover(dir, &[], top, &mut found);
    found
}

/// The variable for a key path, as the reference writes it: `[]` is `<n>`.
fn env_var(path: &str) -> String {
    let mut parts = Vec::new();
    for key in path.split('.') {
        let (key, items) = match key.strip_suffix("[]") {
            Some(key) => (key, true),
            None => (key, false),
        };
        let mut snake = String::new();
        for c in key.chars() {
            if c.is_ascii_uppercase() {
                snake.push('_');
            }
            snake.push(c.to_ascii_uppercase());
        }
        parts.push(snake);
        if items {
            parts.push("<n>".to_owned());
        }
    }
    format!("CERTFLEET_{}", parts.join("__"))
}

/// The spans in backticks of a piece of Markdown.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The reference's rows: key path -> the spans of the row's first cell.
fn documented_rows(doc: &str) -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line[1..].split(" | ").next().unwrap_or_default();
        let spans: Vec<String> = code_spans(first_cell)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let key = spans[0].clone();
        assert!(
            rows.insert(key.clone(), spans).is_none(),
            "docs/configuration.md has two rows for `{key}`"
        );
    }
    rows
}

/// The key paths of a YAML document printed by `check-config`.
fn printed_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = match prefix {
                    "" => key.clone(),
                    _ => format!("{prefix}.{key}"),
                };
                out.insert(path.clone());
                printed_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items.iter().filter(|item| item.is_object()) {
                printed_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// A printed path as the file spells it: `check-config` prints `auth.psk` (its `key` and
/// `keys`) as one list of keys.
fn file_path(printed: &str) -> String {
    match printed.strip_prefix("auth.psk[]") {
        Some(rest) => format!("auth.psk.keys[]{rest}"),
        None => printed.to_owned(),
    }
}

/// Checks that every path has a row naming its variable; returns the failures.
fn undocumented<'a>(
    paths: impl IntoIterator<Item = &'a String>,
    rows: &BTreeMap<String, Vec<String>>,
    doc: &str,
) -> Vec<String> {
    let mut missing = Vec::new();
    for path in paths {
        if !path.contains('.') {
            // A top-level section: its heading.
            if !doc.contains(&format!("## `{path}`")) {
                missing.push(format!("no \"## `{path}`\" heading"));
            }
            continue;
        }
        let var = env_var(path);
        match rows.get(path) {
            None => missing.push(format!("no row for `{path}` (variable `{var}`)")),
            Some(spans) if !spans.contains(&var) => {
                missing.push(format!("the row for `{path}` does not name `{var}`"));
            }
            Some(_) => {}
        }
    }
    missing
}

#[test]
fn every_accepted_key_has_a_row_and_every_row_is_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let accepted = accepted_keys(dir.path());
    for key in [
        "server.listen",
        "storage.urlFile",
        "challenges.dns01[].tsigSecretFile",
        "auth.akash.principals[].domains",
        "auth.psk.keys[].keyFile",
    ] {
        assert!(accepted.contains(key), "probing missed {key}: {accepted:?}");
    }
    let doc = doc_text();
    let rows = documented_rows(&doc);

    let missing = undocumented(&accepted, &rows, &doc);
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks keys the binary accepts; add a row for each:\n  {}",
        missing.join("\n  ")
    );

    let unknown: Vec<&String> = rows.keys().filter(|k| !accepted.contains(*k)).collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md has rows for keys the binary refuses: {unknown:?}"
    );

    // Each documented variable reaches its key: the binary may dislike the value, never the name.
    for path in rows.keys() {
        let var = env_var(path).replace("<n>", "0");
        let output = check_config(dir.path(), &json!({}), &[(var.clone(), "x".to_owned())]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains(": unknown key;") && !stderr.contains("not a valid override name"),
            "{var} (for `{path}`) is not taken as that key:\n{stderr}"
        );
    }
}

/// Writes `contents` to `dir/name` and returns the path as text.
fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path: PathBuf = dir.join(name);
    fs::write(&path, contents).expect("write a test file");
    path.display().to_string()
}

/// Runs `check-config` on `config` and returns the paths of what it prints.
fn effective_paths(dir: &Path, config: &Value) -> BTreeSet<String> {
    let output = check_config(dir, config, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "check-config refused the test config:\n{stderr}"
    );
    let printed: Value = serde_saphyr::from_str(&stdout).unwrap_or_else(|e| {
        panic!("check-config printed YAML that does not parse ({e}):\n{stdout}")
    });
    let mut paths = BTreeSet::new();
    printed_paths(&printed, "", &mut paths);
    paths.iter().map(|p| file_path(p)).collect()
}

#[test]
fn the_effective_config_of_complete_files_is_documented() {
    const AKASH_A: &str = "akash1zyfpx9q4zct3sxg6rvwp68slyqsjygey0quqf3";
    const AKASH_B: &str = "akash1yg3jgffxyu5zj23t9skjutesxyerxdp46ed34h";
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    let server = rcgen::generate_simple_self_signed(vec!["certs.example.com".to_owned()])
        .expect("self-signed certificate");
    let cert_file = write(d, "tls.pem", &server.cert.pem());
    let key_file = write(d, "tls.key", &server.signing_key.serialize_pem());
    let ca = write(d, "ca.pem", &server.cert.pem());
    let gcloud_key =
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("RSA key");
    let service_account = write(
        d,
        "gcloud.json",
        &json!({
            "type": "service_account",
            "project_id": "docs-test",
            "private_key": gcloud_key.serialize_pem(),
            "client_email": "certfleet@docs-test.iam.gserviceaccount.com",
        })
        .to_string(),
    );
    let tsig = write(d, "tsig", "c2VjcmV0LXRzaWcta2V5LWZvci10aGUtZG9jcy10ZXN0\n");
    let hmac = write(d, "hmac", "c2VjcmV0LWhtYWMta2V5LWV4YW1wbGUtMzItYnl0ZXMh\n");

    let complete = json!({
        "server": {
            "listen": "127.0.0.1:8443",
            "metricsListen": "127.0.0.1:9090",
            "issueWait": "30s",
            "tls": { "certFile": cert_file, "keyFile": key_file },
        },
        "storage": {
            "url": "postgres://certfleet:secret@db.example.com:5432/certfleet",
            "encryptionKey": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "previousEncryptionKeys": ["ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="],
            "maxConnections": "20",
            "connectTimeout": "5s",
            "caCertificates": ca,
            "leaseTtl": "30s",
        },
        "acme": {
            "directoryUrl": "https://acme-staging-v02.api.letsencrypt.org/directory",
            "email": "ops@example.com",
            "caCertificates": ca,
            "eab": { "kid": "kid-1", "hmacKeyFile": hmac },
            "keyType": "ecdsa-p384",
            "profile": "shortlived",
        },
        "challenges": {
            "http01": { "listen": "127.0.0.1:8080" },
            "resolvers": ["10.0.0.53:53"],
            "dns01": [
                {
                    "provider": "cloudflare",
                    "zones": ["example.com"],
                    "apiToken": "cloudflare-token-for-the-docs-test",
                    "apiUrl": "https://api.cloudflare.com/client/v4",
                    "ttl": "60",
                    "timeout": "10s",
                    "propagationTimeout": "1m",
                    "pollingInterval": "1s",
                },
                {
                    "provider": "gcloud",
                    "zones": ["example.org"],
                    "project": "docs-test",
                    "serviceAccountFile": service_account,
                },
                {
                    "provider": "rfc2136",
                    "zones": ["internal.example.net"],
                    "nameserver": "ns1.internal.example.net:53",
                    "tsigKeyName": "acme-key",
                    "tsigSecretFile": tsig,
                    "tsigAlgorithm": "hmac-sha512",
                },
            ],
        },
        "auth": {
            "psk": {
                "key": "le-cert-server-single-key-0123456789",
                "keys": [{
                    "name": "fleet-a",
                    "key": "fleet-a-key-for-the-docs-test-0123456789abcdef",
                    "domains": ["a.example.com", "*.a.example.com"],
                }],
            },
            "jwt": {
                "issuerUrl": "https://idp.example.com",
                "audience": ["https://certfleet.example.com", "certfleet"],
                "requiredScopes": ["certificates:request"],
                "domainsClaim": "domains",
                "rolesClaim": "roles",
                "leeway": "30s",
                "algorithms": ["RS256", "ES256"],
                "maxTokenBytes": "4096",
                "caCertificates": ca,
            },
            "akash": {
                "keySource": "chain",
                "restUrl": "https://api.akashnet.net",
                "caCertificates": ca,
                "maxTokenLifetime": "10m",
                "leeway": "10s",
                "audience": AKASH_B,
                "principals": [{ "address": AKASH_A, "domains": ["*.provider.example.com"] }],
            },
        },
        "log": { "format": "json", "level": "info,certfleet=debug" },
    });
    let mut paths = effective_paths(d, &complete);

    // certfleet's own certificate through ACME instead of files: `server.tls.acme`.
    let mut own_acme = complete.clone();
    own_acme["server"]["tls"] = json!({ "acme": { "hostnames": ["certs.example.com"] } });
    paths.extend(effective_paths(d, &own_acme));

    for key in [
        "server.metricsListen",
        "server.tls.certFile",
        "server.tls.acme.hostnames",
        "storage.previousEncryptionKeys",
        "acme.eab.hmacKey",
        "challenges.dns01[].apiToken",
        "challenges.dns01[].serviceAccount",
        "challenges.dns01[].tsigAlgorithm",
        "auth.psk.keys[].domains",
        "auth.jwt.rolesClaim",
        "auth.akash.principals[].address",
        "log.level",
    ] {
        assert!(
            paths.contains(key),
            "the test configs should turn on {key}; check-config printed {paths:?}"
        );
    }

    let doc = doc_text();
    let missing = undocumented(&paths, &documented_rows(&doc), &doc);
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks keys that check-config prints; add a row for each:\n  {}",
        missing.join("\n  ")
    );
}
