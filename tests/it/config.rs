//! The config contract: defaults, the file, `CERTFLEET_*` overrides, `*File` secrets, redaction,
//! and error messages that name the key and the fix.

use std::{fs, io::Write as _, path::Path, time::Duration};

use certfleet::{
    config::{
        Config, ConfigError, Database, ExpiryThreshold, Limit, LimitsConfig, Loaded, LogFormat,
        PostgresConfig, PrivateKeys, Secret, SmtpTls, WebhookFormat,
    },
    domain::{DomainPattern, EventType, KeyType},
    util::duration::{format_duration, parse_duration},
};

/// 48 characters, as `openssl rand -base64 36` prints.
const KEY_A: &str = "aGVsbG8tZmxlZXQtYS1rZXktMDEyMzQ1Njc4OWFiY2RlZmdo";
const KEY_B: &str = "Yi1rZXktZm9yLWZsZWV0LWItOTg3NjU0MzIxMHp5eHd2dXRz";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(yaml: &str, vars: &[(&str, &str)]) -> Loaded {
    match Config::from_yaml(yaml, env(vars)) {
        Ok(loaded) => loaded,
        Err(e) => panic!("config should load, got: {e}"),
    }
}

fn error(yaml: &str, vars: &[(&str, &str)]) -> ConfigError {
    match Config::from_yaml(yaml, env(vars)) {
        Ok(loaded) => panic!("config should fail, loaded: {:?}", loaded.config),
        Err(e) => e,
    }
}

fn message(yaml: &str, vars: &[(&str, &str)]) -> String {
    error(yaml, vars).to_string()
}

fn psk_yaml(key: &str) -> String {
    format!(
        "auth:\n  psk:\n    keys:\n      - name: fleet-a\n        key: \"{key}\"\n        domains: [a.example.com]\n"
    )
}

fn write_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, contents).expect("write temp file");
    path.display().to_string()
}

#[test]
fn defaults_without_a_file() {
    for loaded in [
        load("", &[]),
        Config::load(None, Vec::new()).expect("defaults load"),
    ] {
        let c = &loaded.config;
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(c.server.issue_wait, Duration::from_secs(60));
        assert_eq!(c.storage.database.url().expose(), "sqlite://certfleet.db");
        assert_eq!(
            c.acme.directory_url,
            "https://acme-v02.api.letsencrypt.org/directory"
        );
        assert_eq!(c.acme.email, None);
        assert_eq!(c.acme.ca_certificates, None);
        assert!(c.acme.eab.is_none());
        assert_eq!(c.acme.key_type, KeyType::EcdsaP256);
        assert_eq!(c.acme.profile, None);
        assert_eq!(c.challenges.http01.listen.to_string(), "0.0.0.0:80");
        assert!(c.auth.psk.is_empty());
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("every API request will be refused")),
            "{:?}",
            loaded.warnings
        );
    }
}

#[test]
fn empty_sections_are_defaults() {
    let loaded = load("server:\nacme: {}\n# a comment\n", &[]);
    assert_eq!(loaded.config.server.listen.to_string(), "0.0.0.0:8443");
}

#[test]
fn load_reads_the_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "c.yaml",
        "server:\n  listen: \"127.0.0.1:9443\"\n",
    );
    let loaded = Config::load(Some(Path::new(&path)), Vec::new()).expect("file loads");
    assert_eq!(loaded.config.server.listen.to_string(), "127.0.0.1:9443");

    let missing = dir.path().join("nope.yaml");
    let e = Config::load(Some(&missing), Vec::new()).expect_err("missing file");
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );
}

#[test]
fn yaml_syntax_error_never_quotes_the_file() {
    let e = error(
        "auth:\n  psk:\n    key: \"hunter2-secret-value-xyz\n  x: [",
        &[],
    );
    assert!(matches!(e, ConfigError::Yaml { .. }), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = error("- a\n- b\n", &[]);
    assert!(e.to_string().contains("top level must be a mapping"), "{e}");
}

#[test]
fn env_overrides_nested_keys_in_camel_case() {
    let yaml = "acme:\n  directoryUrl: https://acme.example.com/dir\n  keyType: rsa-2048\n";
    let loaded = load(
        yaml,
        &[
            (
                "CERTFLEET_ACME__DIRECTORY_URL",
                "http://127.0.0.1:14000/dir",
            ),
            ("CERTFLEET_SERVER__ISSUE_WAIT", "5m30s"),
            ("CERTFLEET_CHALLENGES__HTTP01__LISTEN", "127.0.0.1:5002"),
            ("CERTFLEET_ACME__EMAIL", "ops@example.com"),
        ],
    );
    let c = loaded.config;
    assert_eq!(c.acme.directory_url, "http://127.0.0.1:14000/dir");
    assert_eq!(c.acme.key_type, KeyType::Rsa2048, "untouched keys stay");
    assert_eq!(c.server.issue_wait, Duration::from_secs(330));
    assert_eq!(c.challenges.http01.listen.to_string(), "127.0.0.1:5002");
    assert_eq!(c.acme.email.as_deref(), Some("ops@example.com"));
}

#[test]
fn env_sets_list_items_by_index_in_any_order() {
    let loaded = load(
        "",
        &[
            ("CERTFLEET_AUTH__PSK__KEYS__1__NAME", "fleet-b"),
            ("CERTFLEET_AUTH__PSK__KEYS__1__KEY", KEY_B),
            ("CERTFLEET_AUTH__PSK__KEYS__0__NAME", "fleet-a"),
            ("CERTFLEET_AUTH__PSK__KEYS__0__KEY", KEY_A),
            (
                "CERTFLEET_AUTH__PSK__KEYS__0__DOMAINS",
                "a.example.com, *.b.example.com",
            ),
        ],
    );
    let psk = &loaded.config.auth.psk;
    assert_eq!(psk.len(), 2);
    assert_eq!(psk[0].name, "fleet-a");
    assert_eq!(psk[0].key.expose(), KEY_A);
    let domains: Vec<String> = psk[0].domains.iter().map(ToString::to_string).collect();
    assert_eq!(domains, ["a.example.com", "*.b.example.com"]);
    assert_eq!(psk[1].name, "fleet-b");
    assert!(psk[1].domains[0].is_any());
}

#[test]
fn env_overrides_an_existing_list_item_and_extends_by_one() {
    let loaded = load(
        &psk_yaml(KEY_A),
        &[
            ("CERTFLEET_AUTH__PSK__KEYS__0__NAME", "renamed"),
            ("CERTFLEET_AUTH__PSK__KEYS__1__NAME", "fleet-b"),
            ("CERTFLEET_AUTH__PSK__KEYS__1__KEY_FILE", ""),
            ("CERTFLEET_AUTH__PSK__KEYS__1__KEY", KEY_B),
        ],
    );
    let psk = &loaded.config.auth.psk;
    assert_eq!(psk.len(), 2);
    assert_eq!(psk[0].name, "renamed");
    assert_eq!(psk[0].key.expose(), KEY_A, "the file's key stays");
    assert_eq!(
        psk[0].domains,
        [DomainPattern::parse("a.example.com").expect("pattern")]
    );
    assert_eq!(psk[1].key.expose(), KEY_B);
}

#[test]
fn env_index_past_the_end_is_an_error() {
    let m = message(
        &psk_yaml(KEY_A),
        &[("CERTFLEET_AUTH__PSK__KEYS__2__KEY", KEY_B)],
    );
    assert!(m.contains("auth.psk.keys[2]"), "{m}");
    assert!(m.contains("CERTFLEET_AUTH__PSK__KEYS__2__KEY"), "{m}");
    assert!(m.contains("next one is index 1"), "{m}");
    assert!(!m.contains(KEY_B), "{m}");
}

#[test]
fn env_string_for_a_list_of_mappings_names_item_and_variable() {
    let m = message("", &[("CERTFLEET_AUTH__PSK__KEYS", "a,b")]);
    assert!(
        m.contains("auth.psk.keys[0] (from CERTFLEET_AUTH__PSK__KEYS): expected a mapping"),
        "{m}"
    );
}

#[test]
fn env_without_double_underscore_or_prefix_is_ignored() {
    let loaded = load(
        "",
        &[
            ("CERTFLEET_PORT", "tcp://10.0.0.1:8443"),
            ("CERTFLEET_PORT_8443_TCP_ADDR", "10.0.0.1"),
            ("CERTFLEET_CONFIG", "/etc/certfleet.yaml"),
            ("OTHER__SERVER__LISTEN", "bogus"),
            ("certfleet_server__listen", "bogus"),
        ],
    );
    assert_eq!(loaded.config.server.listen.to_string(), "0.0.0.0:8443");
}

#[test]
fn unknown_env_key_names_the_variable() {
    let m = message("", &[("CERTFLEET_SERVER__LISEN", "0.0.0.0:1")]);
    assert_eq!(
        m,
        "invalid configuration: server.lisen (from CERTFLEET_SERVER__LISEN): unknown key; \
         expected one of listen, metricsListen, metricsCertificates, issueWait, cacheSize, ui, tls, watch"
    );
    let m = message("", &[("CERTFLEET_SREVER__LISTEN", "0.0.0.0:1")]);
    assert!(
        m.contains("srever (from CERTFLEET_SREVER__LISTEN): unknown key"),
        "{m}"
    );
    assert!(m.contains("server, storage, acme, challenges, auth"), "{m}");
    let m = message("", &[("CERTFLEET_SERVER____LISTEN", "0.0.0.0:1")]);
    assert!(m.contains("CERTFLEET_SERVER____LISTEN"), "{m}");
}

#[test]
fn env_value_errors_name_the_variable() {
    let m = message("", &[("CERTFLEET_ACME__KEY_TYPE", "ecdsa")]);
    assert!(
        m.contains("acme.keyType (from CERTFLEET_ACME__KEY_TYPE): unknown key type \"ecdsa\""),
        "{m}"
    );
}

#[test]
fn unknown_yaml_keys_name_the_path_and_the_valid_keys() {
    let m = message("server:\n  lisen: \"0.0.0.0:1\"\n", &[]);
    assert_eq!(
        m,
        "invalid configuration: server.lisen: unknown key; expected one of listen, metricsListen, metricsCertificates, issueWait, cacheSize, ui, tls, watch"
    );
    let e = error(
        "srever: {}\nacme:\n  eab:\n    kid: x\n    hmac: y\nauth:\n  psk:\n    keys:\n      - name: a\n        keys: z\n",
        &[],
    );
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["srever", "acme.eab.hmac", "auth.psk.keys[0].keys"]);
    let m = e.to_string();
    assert!(
        m.contains("expected one of kid, hmacKey, hmacKeyFile"),
        "{m}"
    );
    assert!(
        m.contains("expected one of name, key, keyFile, domains"),
        "{m}"
    );
}

#[test]
fn metrics_listener_defaults_to_loopback_and_turns_off_with_empty() {
    let config = load("", &[]).config;
    assert_eq!(
        config.server.metrics_listen.map(|a| a.to_string()),
        Some("127.0.0.1:9090".to_owned())
    );
    let config = load("server:\n  metricsListen: \"0.0.0.0:9100\"\n", &[]).config;
    assert_eq!(
        config.server.metrics_listen.map(|a| a.to_string()),
        Some("0.0.0.0:9100".to_owned())
    );
    let off = load("", &[("CERTFLEET_SERVER__METRICS_LISTEN", "")]).config;
    assert_eq!(off.server.metrics_listen, None);
    assert!(
        off.to_redacted_yaml().contains("metricsListen: \"\""),
        "{}",
        off.to_redacted_yaml()
    );

    let m = message("server:\n  metricsListen: x\n", &[]);
    assert!(
        m.contains("server.metricsListen: \"x\" is not an IP address and port; write it like 127.0.0.1:9090"),
        "{m}"
    );
    let m = message(
        "server:\n  listen: \"127.0.0.1:9000\"\n  metricsListen: \"127.0.0.1:9000\"\n",
        &[],
    );
    assert!(
        m.contains("server.metricsListen: is the same address as server.listen (127.0.0.1:9000)"),
        "{m}"
    );
}

#[test]
fn tls_alpn01_alone_turns_http01_off_and_no_challenge_at_all_is_an_error() {
    let config = load("", &[]).config;
    assert!(config.challenges.http01.enabled);
    assert!(config.challenges.tls_alpn01.is_none());
    let alone = load("challenges:\n  tlsAlpn01: {}\n", &[]).config;
    assert!(
        !alone.challenges.http01.enabled,
        "no challenges.http01 section"
    );
    assert_eq!(
        alone.challenges.tls_alpn01.map(|a| a.listen.to_string()),
        Some("0.0.0.0:443".to_owned())
    );
    let both = load(
        "challenges:\n  http01: {}\n  tlsAlpn01:\n    listen: \"127.0.0.1:8443\"\n",
        &[],
    )
    .config;
    assert!(both.challenges.http01.enabled);
    let m = message("challenges:\n  http01:\n    enabled: false\n", &[]);
    assert!(
        m.contains("challenges.http01.enabled: is false, and neither challenges.tlsAlpn01 nor challenges.dns01 is set"),
        "{m}"
    );
    let m = message("challenges:\n  tlsAlpn01:\n    listen: x\n", &[]);
    assert!(
        m.contains("challenges.tlsAlpn01.listen: \"x\" is not an IP address and port"),
        "{m}"
    );
}

#[test]
fn address_patterns_in_credentials_and_the_address_profile() {
    let yaml = |domains: &str| {
        format!(
            "acme:\n  ipProfile: shortlived\nauth:\n  psk:\n    keys:\n      - name: k\n        key: \"{}\"\n        domains: {domains}\n",
            "k".repeat(40)
        )
    };
    let config = load(&yaml("[\"*\", \"10.0.0.0/8\", \"::1\"]"), &[]).config;
    assert_eq!(
        config.acme.ip_profile.as_ref().map(ToString::to_string),
        Some("shortlived".to_owned())
    );
    let m = message(&yaml("[\"*\", \"a.example.com\"]"), &[]);
    assert!(m.contains("together with other name patterns"), "{m}");
    let m = message(&yaml("[\"10.0.0.0/33\"]"), &[]);
    assert!(
        m.contains("auth.psk.keys[0].domains[0]: \"10.0.0.0/33\" is not a domain pattern")
            && m.contains("10.0.0.0/8"),
        "{m}"
    );
    let m = message(
        "challenges:\n  dns01:\n    - provider: cloudflare\n      apiToken: t\n      zones: [\"192.0.2.1\"]\n",
        &[],
    );
    assert!(m.contains("challenges.dns01[0].zones[0]"), "{m}");
}

#[test]
fn metrics_certificates_chooses_the_per_certificate_series() {
    use certfleet::config::CertificateSeries;
    assert_eq!(
        load("", &[]).config.server.metrics_certificates,
        CertificateSeries::Due
    );
    for (text, want) in [
        ("due", CertificateSeries::Due),
        ("all", CertificateSeries::All),
        ("none", CertificateSeries::None),
    ] {
        let yaml = format!("server:\n  metricsCertificates: {text}\n");
        let config = load(&yaml, &[]).config;
        assert_eq!(config.server.metrics_certificates, want, "{text}");
        assert!(
            config
                .to_redacted_yaml()
                .contains(&format!("metricsCertificates: {text}")),
            "{}",
            config.to_redacted_yaml()
        );
    }
    let from_env = load("", &[("CERTFLEET_SERVER__METRICS_CERTIFICATES", "all")]).config;
    assert_eq!(from_env.server.metrics_certificates, CertificateSeries::All);
    let m = message("server:\n  metricsCertificates: every\n", &[]);
    assert!(
        m.contains("server.metricsCertificates: \"every\" is not a choice; use due"),
        "{m}"
    );
}

#[test]
fn cache_size_reads_sizes_and_names_the_fix() {
    assert_eq!(load("", &[]).config.server.cache_size, 32 << 20);
    for (text, want, printed) in [
        ("64MiB", 64 << 20, "64MiB"),
        ("512KiB", 512 << 10, "512KiB"),
        ("1048576", 1 << 20, "1MiB"),
        ("0", 0, "\"0\""),
    ] {
        let config = load(&format!("server:\n  cacheSize: {text}\n"), &[]).config;
        assert_eq!(config.server.cache_size, want, "{text}");
        let yaml = config.to_redacted_yaml();
        assert!(yaml.contains(&format!("cacheSize: {printed}")), "{yaml}");
    }
    let from_env = load("", &[("CERTFLEET_SERVER__CACHE_SIZE", "8MiB")]).config;
    assert_eq!(from_env.server.cache_size, 8 << 20);
    let m = message("server:\n  cacheSize: 32mb\n", &[]);
    assert!(
        m.contains("server.cacheSize: \"32mb\" has an unknown unit \"mb\"; write sizes like 32MiB"),
        "{m}"
    );
}

#[test]
fn log_format_and_level() {
    let config = load("", &[]).config;
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, "info");
    let config = load(
        "log:\n  format: json\n  level: \"warn,certfleet::audit=info\"\n",
        &[],
    )
    .config;
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "warn,certfleet::audit=info");
    let m = message(
        "log:\n  format: xml\n",
        &[("CERTFLEET_LOG__LEVEL", "info,=x=y")],
    );
    assert!(
        m.contains("log.format: \"xml\" is not a log format; use text (default) or json"),
        "{m}"
    );
    assert!(
        m.contains(
            "log.level (from CERTFLEET_LOG__LEVEL): \"info,=x=y\" is not a filter directive"
        ),
        "{m}"
    );
}

#[test]
fn certificates_private_keys_and_the_client_key_bound() {
    let config = load("", &[]).config;
    assert_eq!(config.certificates.private_keys, PrivateKeys::Both);
    assert_eq!(config.certificates.max_client_keys, 3);
    let config = load(
        "certificates:\n  privateKeys: client\n  maxClientKeys: 0\n",
        &[("CERTFLEET_CERTIFICATES__PRIVATE_KEYS", "server")],
    )
    .config;
    assert_eq!(config.certificates.private_keys, PrivateKeys::Server);
    assert_eq!(config.certificates.max_client_keys, 0);
    let m = message(
        "certificates:\n  privateKeys: nobody\n  maxClientKeys: -1\n",
        &[],
    );
    assert!(
        m.contains("certificates.privateKeys: \"nobody\" is not a choice; use server"),
        "{m}"
    );
    assert!(
        m.contains("certificates.maxClientKeys: \"-1\" is not a count"),
        "{m}"
    );
    let m = message("certificates:\n  keys: client\n", &[]);
    assert!(
        m.contains("privateKeys") && m.contains("maxClientKeys"),
        "{m}"
    );
}

#[test]
fn type_errors_name_the_path_without_the_value() {
    let m = message("server: 5\n", &[]);
    assert!(
        m.contains("server: expected a mapping with keys listen, metricsListen, metricsCertificates, issueWait, cacheSize, ui, tls, watch, found a number"),
        "{m}"
    );
    let m = message(
        "auth:\n  psk:\n    keys: [\"s3cr3t-in-the-wrong-place\"]\n",
        &[],
    );
    assert!(m.contains("auth.psk.keys[0]: expected a mapping"), "{m}");
    assert!(!m.contains("s3cr3t"), "{m}");
    let m = message(
        "auth:\n  psk:\n    key: 12345678901234567890123456789012345.5\n",
        &[],
    );
    assert!(m.contains("auth.psk.key: expected a string"), "{m}");
    assert!(m.contains("quotes"), "{m}");
    assert!(!m.contains("12345678"), "{m}");
    let m = message("acme:\n  profile: yes\n", &[]);
    assert!(
        m.contains("acme.profile: expected a string, found a boolean"),
        "{m}"
    );
    let m = message(
        "auth:\n  psk:\n    keys:\n      - domains: a.example.com\n",
        &[],
    );
    assert!(
        m.contains("auth.psk.keys[0].domains: expected a list, found a string"),
        "{m}"
    );
}

#[test]
fn whole_numbers_are_read_as_text() {
    let yaml = "acme:\n  eab:\n    kid: 12345\n    hmacKey: \"c2VjcmV0LWhtYWMta2V5LWV4YW1wbGUtMzItYnl0ZXMh\"\n";
    let eab = load(yaml, &[]).config.acme.eab.expect("eab");
    assert_eq!(eab.kid, "12345");
    let m = message("server:\n  issueWait: 0\n", &[]);
    assert!(m.contains("server.issueWait: must be more than 0"), "{m}");
}

#[test]
fn secrets_read_from_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = write_file(dir.path(), "url", "sqlite:///var/lib/certfleet/db.sqlite\n");
    let hmac = write_file(
        dir.path(),
        "hmac",
        "c2VjcmV0LWhtYWMta2V5LWV4YW1wbGUtMzItYnl0ZXMh\n",
    );
    let single = write_file(dir.path(), "single", &format!("{KEY_B}\r\n"));
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    writeln!(file, "{KEY_A}").expect("write");
    let yaml = format!(
        "storage:\n  urlFile: {url}\nacme:\n  eab:\n    kid: k\n    hmacKeyFile: {hmac}\n\
         auth:\n  psk:\n    keyFile: {single}\n    keys:\n      - name: a\n        keyFile: {}\n",
        file.path().display()
    );
    let c = load(&yaml, &[]).config;
    assert_eq!(
        c.storage.database.url().expose(),
        "sqlite:///var/lib/certfleet/db.sqlite"
    );
    assert_eq!(
        c.acme.eab.expect("eab").hmac_key.expose(),
        "c2VjcmV0LWhtYWMta2V5LWV4YW1wbGUtMzItYnl0ZXMh"
    );
    assert_eq!(c.auth.psk[0].name, "default");
    assert_eq!(
        c.auth.psk[0].key.expose(),
        KEY_B,
        "one trailing CRLF trimmed"
    );
    assert_eq!(
        c.auth.psk[1].key.expose(),
        KEY_A,
        "one trailing newline trimmed"
    );

    // The file form through the environment too.
    let c = load("", &[("CERTFLEET_STORAGE__URL_FILE", &url)]).config;
    assert_eq!(
        c.storage.database.url().expose(),
        "sqlite:///var/lib/certfleet/db.sqlite"
    );
}

#[test]
fn secret_and_its_file_together_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = write_file(dir.path(), "s", KEY_A);
    for (yaml, key) in [
        (
            format!("storage:\n  url: sqlite://x.db\n  urlFile: {f}\n"),
            "storage.url",
        ),
        (
            format!("acme:\n  eab:\n    kid: k\n    hmacKey: {KEY_A}\n    hmacKeyFile: {f}\n"),
            "acme.eab.hmacKey",
        ),
        (
            format!("auth:\n  psk:\n    key: {KEY_A}\n    keyFile: {f}\n"),
            "auth.psk.key",
        ),
        (
            format!(
                "auth:\n  psk:\n    keys:\n      - name: a\n        key: {KEY_A}\n        keyFile: {f}\n"
            ),
            "auth.psk.keys[0].key",
        ),
    ] {
        let m = message(&yaml, &[]);
        assert!(
            m.contains(&format!("{key}: is set together with {key}File")),
            "{m}"
        );
        assert!(!m.contains(KEY_A), "{m}");
    }
}

#[test]
fn unreadable_secret_file_names_the_key_and_path() {
    let m = message(
        "auth:\n  psk:\n    keyFile: /nonexistent/certfleet/psk\n",
        &[],
    );
    assert!(
        m.contains("auth.psk.keyFile: cannot read /nonexistent/certfleet/psk"),
        "{m}"
    );
}

#[test]
fn secrets_never_printed() {
    let hmac = "c2VjcmV0LWhtYWMta2V5LWV4YW1wbGUtMzItYnl0ZXMh";
    let yaml = format!(
        "storage:\n  url: sqlite://db-with-secret-path.db\nacme:\n  eab:\n    kid: k\n    hmacKey: {hmac}\n\
         auth:\n  psk:\n    key: {KEY_B}\n    keys:\n      - name: a\n        key: {KEY_A}\n"
    );
    let c = load(&yaml, &[]).config;
    let printed = [
        c.to_redacted_yaml(),
        format!("{c:?}"),
        format!("{:?}", c.auth.psk[0]),
    ];
    for text in printed {
        for secret in [KEY_A, KEY_B, hmac, "db-with-secret-path"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("<redacted>"), "{text}");
    }
    assert_eq!(c.auth.psk[1].key.to_string(), "<redacted>");

    // Nor in errors: short keys, duplicates, bad HMAC keys, database URLs with passwords.
    let short = "short-but-secret-key-1234";
    let cases = [
        (psk_yaml(short), short),
        (
            "auth:\n  psk:\n    key: tiny-secret\n".to_owned(),
            "tiny-secret",
        ),
        (
            format!(
                "auth:\n  psk:\n    key: {KEY_A}\n    keys:\n      - name: a\n        key: {KEY_A}\n"
            ),
            KEY_A,
        ),
        (
            "acme:\n  eab:\n    kid: k\n    hmacKey: \"n0t base64 $ecret\"\n".to_owned(),
            "$ecret",
        ),
        (
            "acme:\n  eab:\n    kid: k\n    hmacKey: c2hvcnRzZWNyZXQ\n".to_owned(),
            "c2hvcnRzZWNyZXQ",
        ),
        (
            "storage:\n  url: postgres://u:hunter2@db/c\n".to_owned(),
            "hunter2",
        ),
        (
            "storage:\n  url: mysql://u:hunter2@db/c\n".to_owned(),
            "hunter2",
        ),
        ("storage:\n  url: hunter2\n".to_owned(), "hunter2"),
    ];
    for (yaml, secret) in cases {
        let e = error(&yaml, &[]);
        assert!(!e.to_string().contains(secret), "{secret} leaked in {e}");
        assert!(
            !format!("{e:?}").contains(secret),
            "{secret} leaked in {e:?}"
        );
    }
}

#[test]
fn redacted_yaml_prints_values_as_written() {
    let yaml = format!(
        "server:\n  issueWait: 5m30s\nacme:\n  keyType: rsa-3072\n{}",
        psk_yaml(KEY_A)
    );
    let out = load(&yaml, &[]).config.to_redacted_yaml();
    assert!(
        load("", &[])
            .config
            .to_redacted_yaml()
            .contains("issueWait: 60s")
    );
    for expected in [
        "listen: 0.0.0.0:8443",
        "issueWait: 5m30s",
        "url: <redacted>",
        "keyType: rsa-3072",
        "directoryUrl: https://acme-v02.api.letsencrypt.org/directory",
        "a.example.com",
        "name: fleet-a",
        "key: <redacted>",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}

#[test]
fn single_psk_key_rules() {
    let m = message("auth:\n  psk:\n    key: fifteen-chars-x\n", &[]);
    assert!(m.contains("auth.psk.key: is 15 characters"), "{m}");
    assert!(m.contains("at least 16"), "{m}");

    let loaded = load("auth:\n  psk:\n    key: sixteen-chars-xy\n", &[]);
    let psk = &loaded.config.auth.psk;
    assert_eq!(psk.len(), 1);
    assert_eq!(psk[0].name, "default");
    assert_eq!(psk[0].domains, [DomainPattern::any()]);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("auth.psk.key is only 16 characters")),
        "{:?}",
        loaded.warnings
    );
    assert!(!loaded.warnings.iter().any(|w| w.contains("refused")));

    let loaded = load(&format!("auth:\n  psk:\n    key: {KEY_A}\n"), &[]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn psk_keys_rules() {
    let thirty_one = "x".repeat(31);
    let m = message(&psk_yaml(&thirty_one), &[]);
    assert!(
        m.contains("auth.psk.keys[0].key: is 31 characters; use at least 32"),
        "{m}"
    );
    assert!(m.contains("openssl rand -base64 48"), "{m}");
    load(&psk_yaml(&"x".repeat(32)), &[]);

    let m = message(
        &format!("auth:\n  psk:\n    keys:\n      - key: {KEY_A}\n"),
        &[],
    );
    assert!(m.contains("auth.psk.keys[0].name: is required"), "{m}");
    let m = message("auth:\n  psk:\n    keys:\n      - name: a\n", &[]);
    assert!(m.contains("auth.psk.keys[0].key: is required"), "{m}");

    let dup_names = format!(
        "auth:\n  psk:\n    keys:\n      - name: a\n        key: {KEY_A}\n      - name: a\n        key: {KEY_B}\n"
    );
    let m = message(&dup_names, &[]);
    assert!(
        m.contains("auth.psk.keys[1].name: \"a\" is already the name of auth.psk.keys[0]"),
        "{m}"
    );

    let dup_keys = format!(
        "auth:\n  psk:\n    keys:\n      - name: a\n        key: {KEY_A}\n      - name: b\n        key: {KEY_A}\n"
    );
    let m = message(&dup_keys, &[]);
    assert!(
        m.contains("auth.psk.keys[1].key: is the same key as auth.psk.keys[0].key"),
        "{m}"
    );
    assert!(m.contains("auth.psk.keys[0] (a)"), "{m}");
    assert!(!m.contains(KEY_A), "{m}");

    let taken = format!(
        "auth:\n  psk:\n    key: {KEY_B}\n    keys:\n      - name: default\n        key: {KEY_A}\n"
    );
    let m = message(&taken, &[]);
    assert!(
        m.contains("auth.psk.keys[0].name: \"default\" is already the name of auth.psk.key"),
        "{m}"
    );
}

#[test]
fn psk_domains_and_every_domain_warnings() {
    let base = format!("auth:\n  psk:\n    keys:\n      - name: a\n        key: {KEY_A}\n");
    for extra in ["", "        domains: [\"*\"]\n"] {
        let loaded = load(&format!("{base}{extra}"), &[]);
        assert_eq!(loaded.config.auth.psk[0].domains, [DomainPattern::any()]);
        assert_eq!(
            loaded.warnings,
            ["auth.psk.keys[0] (a) may request certificates for every domain"]
        );
    }
    let loaded = load(
        &format!("{base}        domains: [\"*.A.example.com\"]\n"),
        &[],
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.auth.psk[0].domains[0].to_string(),
        "*.a.example.com"
    );

    let m = message(
        &format!("{base}        domains: [a.example.com, \"bad name!\"]\n"),
        &[],
    );
    assert!(
        m.contains("auth.psk.keys[0].domains[1]: \"bad name!\" is not a domain pattern"),
        "{m}"
    );
    let m = message(&format!("{base}        domains: []\n"), &[]);
    assert!(m.contains("auth.psk.keys[0].domains: is empty"), "{m}");
    let m = message(
        &format!("{base}        domains: [\"*\", a.example.com]\n"),
        &[],
    );
    assert!(m.contains("auth.psk.keys[0].domains: lists \"*\""), "{m}");
}

#[test]
fn duration_table() {
    let ok = [
        ("0", 0),
        ("90s", 90_000),
        ("15m", 900_000),
        ("1h", 3_600_000),
        ("500ms", 500),
        ("1h30m", 5_400_000),
        ("2d", 172_800_000),
        ("1m30s", 90_000),
    ];
    for (text, millis) in ok {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_millis(millis)),
            "{text}"
        );
    }
    for bad in [
        "", "-5s", "90", "5y", "1.5h", "s", "1 h", "10sec", "00", " 5s",
    ] {
        let e = parse_duration(bad).expect_err(bad);
        assert!(!e.to_string().is_empty());
    }
    assert!(
        parse_duration("90")
            .expect_err("bare")
            .to_string()
            .contains("no unit")
    );
    assert!(
        parse_duration("5y")
            .expect_err("unit")
            .to_string()
            .contains("unknown unit \"y\"")
    );
    for d in [0, 500, 60_000, 5_400_000, 172_800_000, 90_061_500] {
        let d = Duration::from_millis(d);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
    assert_eq!(format_duration(Duration::from_secs(60)), "60s");
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    assert_eq!(format_duration(Duration::from_secs(900)), "15m");
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
}

#[test]
fn issue_wait_bounds() {
    assert!(message("server:\n  issueWait: \"0\"\n", &[]).contains("must be more than 0"));
    let m = message("server:\n  issueWait: 11m\n", &[]);
    assert!(
        m.contains("server.issueWait: \"11m\" is longer than the 10m maximum"),
        "{m}"
    );
    let m = message("server:\n  issueWait: \"60\"\n", &[]);
    assert!(m.contains("server.issueWait: \"60\" has no unit"), "{m}");
    let c = load("server:\n  issueWait: 10m\n", &[]).config;
    assert_eq!(c.server.issue_wait, Duration::from_secs(600));
}

#[test]
fn bad_key_type_lists_the_valid_ones() {
    let m = message("acme:\n  keyType: ecdsa\n", &[]);
    assert_eq!(
        m,
        "invalid configuration: acme.keyType: unknown key type \"ecdsa\"; use one of \
         ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096"
    );
    let c = load("acme:\n  keyType: ecdsa-p384\n", &[]).config;
    assert_eq!(c.acme.key_type, KeyType::EcdsaP384);
}

#[test]
fn directory_url_http_only_for_loopback() {
    let m = message("acme:\n  directoryUrl: http://acme.example.com/dir\n", &[]);
    assert!(
        m.contains("acme.directoryUrl: \"http://acme.example.com/dir\" uses http://"),
        "{m}"
    );
    assert!(m.contains("127.0.0.0/8, ::1 and localhost"), "{m}");
    for bad in [
        "http://127.0.0.1@evil.example.com/dir",
        "http://10.0.0.1:14000/dir",
        "ftp://acme.example.com/dir",
        "acme.example.com/dir",
        "https:///dir",
    ] {
        let m = message(&format!("acme:\n  directoryUrl: \"{bad}\"\n"), &[]);
        assert!(m.contains("acme.directoryUrl"), "{bad}: {m}");
    }
    for good in [
        "http://127.0.0.1:14000/dir",
        "http://127.5.6.7/dir",
        "http://localhost:14000/dir",
        "http://[::1]:14000/dir",
        "https://acme.example.com/dir",
    ] {
        let c = load(&format!("acme:\n  directoryUrl: \"{good}\"\n"), &[]).config;
        assert_eq!(c.acme.directory_url, good);
    }
}

#[test]
fn storage_url_is_sqlite_or_postgres() {
    let key = "encryptionKey: \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"";
    for url in [
        "postgres://u:p@db/certfleet",
        "postgresql://u:p@db:5433/certfleet?sslmode=verify-full",
        "postgres:///certfleet?host=/run/postgresql",
    ] {
        let c = load(&format!("storage:\n  url: \"{url}\"\n  {key}\n"), &[]).config;
        assert_eq!(c.storage.database.url().expose(), url);
    }
    let m = message(
        &format!("storage:\n  url: \"postgres://u:hunter2@db/c?sslmode=strict\"\n  {key}\n"),
        &[],
    );
    assert!(
        m.contains("storage.url: sslmode=strict is not a PostgreSQL SSL mode; use disable"),
        "{m}"
    );
    assert!(!m.contains("hunter2"), "{m}");
    let m = message("storage:\n  url: mysql://u:p@db/certfleet\n", &[]);
    assert!(
        m.contains("storage.url: the mysql:// scheme is not supported"),
        "{m}"
    );
    let c = load("storage:\n  url: \"sqlite::memory:\"\n", &[]).config;
    assert_eq!(c.storage.database.url().expose(), "sqlite::memory:");
}

/// The PostgreSQL settings of a config whose `storage.url` is a PostgreSQL URL.
fn postgres(config: &Config) -> &PostgresConfig {
    match &config.storage.database {
        Database::Postgres(postgres) => postgres,
        Database::Sqlite(_) => panic!("storage.url was read as a SQLite URL"),
    }
}

#[test]
fn postgres_storage_needs_the_encryption_key_and_takes_pool_settings() {
    const URL: &str = "storage:\n  url: postgres://certfleet:pw@db.example.com/certfleet\n";
    const KEY: &str = "  encryptionKey: \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n";
    let m = message(URL, &[]);
    assert!(
        m.contains("storage.encryptionKey: is required with a PostgreSQL storage.url")
            && m.contains("openssl rand -base64 32"),
        "{m}"
    );

    let loaded = load(&format!("{URL}{KEY}"), &[]);
    let storage = postgres(&loaded.config);
    assert_eq!(storage.max_connections, 10);
    assert_eq!(storage.connect_timeout, Duration::from_secs(10));
    assert_eq!(storage.ca_certificates, None);
    assert!(
        !loaded.warnings.iter().any(|w| w.contains("storage")),
        "{:?}",
        loaded.warnings
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let ca = write_file(dir.path(), "ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    let settings = format!("  maxConnections: 25\n  connectTimeout: 3s\n  caCertificates: {ca}\n");
    let storage = postgres(&load(&format!("{URL}{KEY}{settings}"), &[]).config).clone();
    assert_eq!(storage.max_connections, 25);
    assert_eq!(storage.connect_timeout, Duration::from_secs(3));
    assert_eq!(storage.ca_certificates.as_deref(), Some(Path::new(&ca)));
    let loaded = load(
        &format!("{URL}{KEY}"),
        &[("CERTFLEET_STORAGE__MAX_CONNECTIONS", "2")],
    );
    assert_eq!(postgres(&loaded.config).max_connections, 2);

    for (line, expected) in [
        (
            "  maxConnections: 0\n",
            "maxConnections: \"0\" is not a number",
        ),
        ("  maxConnections: many\n", "a whole number from 1 to 1000"),
        (
            "  connectTimeout: \"0\"\n",
            "connectTimeout: must be more than 0",
        ),
        ("  connectTimeout: soon\n", "storage.connectTimeout: "),
        (
            "  caCertificates: /nonexistent\n",
            "caCertificates: cannot read",
        ),
    ] {
        let m = message(&format!("{URL}{KEY}{line}"), &[]);
        assert!(m.contains(expected), "{line}: {m}");
    }
    let m = message(
        &format!(
            "storage:\n  url: postgres://db.example.com/c?sslmode=require\n{KEY}  caCertificates: {ca}\n"
        ),
        &[],
    );
    assert!(
        m.contains("storage.caCertificates: is used only to verify the server")
            && m.contains("sslmode=verify-full"),
        "{m}"
    );

    // On SQLite they mean nothing: said, not refused.
    let loaded = load("storage:\n  maxConnections: 5\n", &[]);
    let warned = |w: &String| w.contains("storage.maxConnections applies only to PostgreSQL");
    assert!(loaded.warnings.iter().any(warned), "{:?}", loaded.warnings);
}

#[test]
fn concurrent_orders_are_bounded() {
    assert_eq!(load("", &[]).config.acme.max_concurrent_orders, 50);
    let c = load("acme:\n  maxConcurrentOrders: 8\n", &[]).config;
    assert_eq!(c.acme.max_concurrent_orders, 8);
    let c = load("", &[("CERTFLEET_ACME__MAX_CONCURRENT_ORDERS", "200")]).config;
    assert_eq!(c.acme.max_concurrent_orders, 200);
    for bad in ["0", "1001", "many", "-3"] {
        let m = message(&format!("acme:\n  maxConcurrentOrders: \"{bad}\"\n"), &[]);
        assert!(
            m.contains("acme.maxConcurrentOrders") && m.contains("a whole number from 1 to 1000"),
            "{bad}: {m}"
        );
    }
}

#[test]
fn email_checks() {
    let c = load("acme:\n  email: mailto:ops@example.com\n", &[]).config;
    assert_eq!(c.acme.email.as_deref(), Some("ops@example.com"));
    for bad in [
        "ops",
        "a@b@example.com",
        "ops@example.com,dev@example.com",
        "o ps@example.com",
        "@example.com",
    ] {
        let m = message(&format!("acme:\n  email: \"{bad}\"\n"), &[]);
        assert!(m.contains("acme.email:"), "{bad}: {m}");
    }
}

#[test]
fn ca_certificates_must_hold_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_file(
        dir.path(),
        "roots.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    let empty = write_file(dir.path(), "empty.pem", "not a pem\n");
    let c = load(&format!("acme:\n  caCertificates: {good}\n"), &[]).config;
    assert_eq!(c.acme.ca_certificates.as_deref(), Some(Path::new(&good)));
    let m = message(&format!("acme:\n  caCertificates: {empty}\n"), &[]);
    assert!(
        m.contains(&format!(
            "acme.caCertificates: {empty} holds no PEM certificate"
        )),
        "{m}"
    );
    let m = message("acme:\n  caCertificates: /nonexistent/roots.pem\n", &[]);
    assert!(
        m.contains("acme.caCertificates: cannot read /nonexistent/roots.pem"),
        "{m}"
    );
}

#[test]
fn eab_hmac_key_forms() {
    // 32 bytes: standard padded, url-safe padded, url-safe unpadded all decode alike.
    let bytes: Vec<u8> = (0..32u8)
        .map(|b| b.wrapping_mul(37).wrapping_add(250))
        .collect();
    use base64::Engine as _;
    let engines = [
        base64::engine::general_purpose::STANDARD.encode(&bytes),
        base64::engine::general_purpose::URL_SAFE.encode(&bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
    ];
    for encoded in engines {
        let c = load(
            &format!("acme:\n  eab:\n    kid: k\n    hmacKey: \"{encoded}\"\n"),
            &[],
        )
        .config;
        let key = c.acme.eab.expect("eab").hmac_key;
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key.expose())
            .expect("normalised to unpadded base64url");
        assert_eq!(decoded, bytes);
    }
    let m = message("acme:\n  eab:\n    kid: k\n    hmacKey: c2hvcnQ\n", &[]);
    assert!(m.contains("acme.eab.hmacKey: decodes to 5 bytes"), "{m}");
    let m = message(
        "acme:\n  eab:\n    hmacKey: c2VjcmV0LWhtYWMta2V5LWV4YW1wbGUtMzItYnl0ZXMh\n",
        &[],
    );
    assert!(m.contains("acme.eab.kid: is required"), "{m}");
}

#[test]
fn several_errors_reported_together() {
    let yaml = "server:\n  listen: \"localhost:8443\"\nacme:\n  keyType: ecdsa\n  email: nobody\nauth:\n  psk:\n    key: short\n";
    let e = error(yaml, &[("CERTFLEET_SERVER__ISSUE_WAIT", "-1s")]);
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.listen",
            "server.issueWait",
            "acme.email",
            "acme.keyType",
            "auth.psk.key"
        ]
    );
    let m = e.to_string();
    assert!(
        m.starts_with("invalid configuration (5 problems):\n"),
        "{m}"
    );
    assert_eq!(m.lines().count(), 6, "{m}");
    assert!(
        m.contains("server.issueWait (from CERTFLEET_SERVER__ISSUE_WAIT): \"-1s\" is negative"),
        "{m}"
    );
}

#[test]
fn example_config_loads() {
    let text = include_str!("../../config.example.yaml");
    let loaded = load(text, &[]);
    let c = &loaded.config;
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(c.server.issue_wait, Duration::from_secs(60));
    assert_eq!(c.acme.email.as_deref(), Some("ops@example.com"));
    assert_eq!(c.acme.key_type, KeyType::EcdsaP256);
    assert_eq!(c.challenges.http01.listen.to_string(), "0.0.0.0:80");
    assert_eq!(c.auth.psk.len(), 1);
    assert_eq!(c.auth.psk[0].name, "fleet-a");
    assert_eq!(c.auth.psk[0].key.expose().len(), 48);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // The commented-out keys are valid too, once uncommented.
    let uncommented: String = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix("# ") {
            Some(rest)
                if line.starts_with("  ")
                    && !line.contains("File:")
                    && !line.contains("caCertificates") =>
            {
                format!("{}{rest}\n", &line[..line.len() - line.trim_start().len()])
            }
            _ => format!("{line}\n"),
        })
        .collect();
    let loaded = load(&uncommented, &[]);
    assert!(loaded.config.acme.eab.is_some(), "{uncommented}");
    assert_eq!(
        loaded
            .config
            .acme
            .profile
            .as_ref()
            .map(certfleet::domain::Profile::as_str),
        Some("shortlived")
    );
    // The le-cert-server single key, fleet-a, and the operator's admin key.
    assert_eq!(loaded.config.auth.psk.len(), 3);
    assert!(
        loaded
            .config
            .auth
            .psk
            .iter()
            .any(|k| k.name == "ops" && k.admin)
    );
    assert!(loaded.config.server.ui);
    assert_eq!(
        loaded
            .config
            .auth
            .jwt
            .as_ref()
            .and_then(|j| j.admin_scope.as_deref()),
        Some("certfleet:admin")
    );
    assert_eq!(loaded.config.challenges.dns01.len(), 3, "{uncommented}");
    assert_eq!(loaded.config.challenges.resolvers.len(), 1);
    let akash = loaded.config.auth.akash.as_ref().expect("auth.akash");
    assert_eq!(akash.principals.len(), 1, "{uncommented}");
    assert!(akash.audience.is_some() && akash.rest_url.is_some());
    assert!(
        c.notifications.is_empty(),
        "the file sends nothing as shipped"
    );
    let notifications = &loaded.config.notifications;
    assert_eq!(notifications.webhooks.len(), 2, "{uncommented}");
    assert_eq!(notifications.webhooks[0].name, "ops-alerts");
    assert_eq!(notifications.webhooks[1].format, WebhookFormat::Slack);
    let email = notifications.email.as_ref().expect("notifications.email");
    assert_eq!(
        email.recipients(EventType::CertificateRenewalFailed).len(),
        2
    );
}

#[test]
fn storage_encryption_keys_must_be_32_bytes_of_base64() {
    let good = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let loaded = load(
        &format!("storage:\n  encryptionKey: \"{good}\"\n  previousEncryptionKeys: [\"{good}\"]\n"),
        &[],
    );
    assert_eq!(
        loaded
            .config
            .storage
            .encryption_key
            .as_ref()
            .map(certfleet::config::EncryptionKey::expose),
        Some(b"0123456789abcdef0123456789abcdef"),
        "the key is read as the 32 bytes its base64 encodes"
    );
    assert_eq!(loaded.config.storage.previous_encryption_keys.len(), 1);
    assert!(
        !format!("{:?}", loaded.config).contains(good),
        "the key is redacted"
    );
    assert!(!loaded.config.to_redacted_yaml().contains(good));

    let m = message("storage:\n  encryptionKey: c2hvcnQ=\n", &[]);
    assert!(
        m.contains("storage.encryptionKey") && m.contains("openssl rand -base64 32"),
        "{m}"
    );
    assert!(!m.contains("c2hvcnQ="), "the bad key is not echoed: {m}");
    let m = message(
        &format!("storage:\n  previousEncryptionKeys: [\"{good}\", \"nope\"]\n"),
        &[],
    );
    assert!(m.contains("storage.previousEncryptionKeys[1]"), "{m}");
    let m = message("", &[("CERTFLEET_STORAGE__ENCRYPTION_KEY", "short")]);
    assert!(m.contains("CERTFLEET_STORAGE__ENCRYPTION_KEY"), "{m}");
}

#[test]
fn server_tls_takes_files_or_acme_hostnames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("tls.pem");
    let key = dir.path().join("tls.key");
    fs::write(&cert, "x").expect("write");
    fs::write(&key, "x").expect("write");
    let files = format!(
        "server:\n  tls:\n    certFile: {}\n    keyFile: {}\n",
        cert.display(),
        key.display()
    );
    let loaded = load(&files, &[]);
    assert!(matches!(
        loaded.config.server.tls,
        Some(certfleet::config::TlsConfig::Files { .. })
    ));
    let acme = load(
        "server:\n  tls:\n    acme:\n      hostnames: [Certs.Example.com]\n",
        &[],
    );
    match acme.config.server.tls {
        Some(certfleet::config::TlsConfig::Acme { acme }) => {
            assert_eq!(acme.hostnames.key(), "certs.example.com");
        }
        other => panic!("expected acme, got {other:?}"),
    }
    let cases = [
        (
            format!("server:\n  tls:\n    certFile: {}\n", cert.display()),
            "go together",
        ),
        (
            "server:\n  tls:\n    certFile: /nope.pem\n    keyFile: /nope.key\n".to_owned(),
            "server.tls.certFile",
        ),
        ("server:\n  tls: {}\n".to_owned(), "is empty"),
        (
            "server:\n  tls:\n    acme:\n      hostnames: [\"*.example.com\"]\n".to_owned(),
            "wildcard",
        ),
        (
            "server:\n  tls:\n    acme:\n      hostnames: []\n".to_owned(),
            "server.tls.acme.hostnames",
        ),
        (
            format!(
                "server:\n  tls:\n    certFile: {}\n    keyFile: {}\n    acme:\n      hostnames: [a.example.com]\n",
                cert.display(),
                key.display()
            ),
            "not both",
        ),
    ];
    for (yaml, expected) in cases {
        let m = message(&yaml, &[]);
        assert!(m.contains(expected), "{yaml} -> {m}");
    }
}

#[test]
fn dns01_entries_resolve_with_aliases_files_and_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("cf-token");
    fs::write(&token_file, "cf-token-from-file\n").expect("write");
    let yaml = format!(
        "challenges:\n  resolvers: [\"127.0.0.1:5353\", \"10.0.0.53\"]\n  dns01:\n    - provider: cf\n      zones: [Example.COM.]\n      apiTokenFile: \"{}\"\n    - provider: rfc2136\n      nameserver: ns1.example.net\n      tsigKeyName: acme-key\n      tsigSecret: \"c2VjcmV0\"\n      tsigAlgorithm: hmac-sha512\n      ttl: 60\n      propagationTimeout: 5m\n",
        token_file.display()
    );
    let loaded = load(&yaml, &[]);
    let challenges = &loaded.config.challenges;
    assert_eq!(
        challenges
            .resolvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["127.0.0.1:5353", "10.0.0.53:53"]
    );
    let cf = &challenges.dns01[0];
    assert_eq!(cf.zones, ["example.com"]);
    assert_eq!(
        (cf.ttl, cf.timeout, cf.propagation_timeout),
        (120, Duration::from_secs(30), Duration::from_secs(120))
    );
    match &cf.provider {
        certfleet::config::DnsProviderConfig::Cloudflare(cf) => {
            assert_eq!(cf.api_token.expose(), "cf-token-from-file");
            assert_eq!(cf.api_url, "https://api.cloudflare.com/client/v4");
        }
        other => panic!("{other:?}"),
    }
    assert!(cf.matches("*.www.example.com") && !cf.matches("example.org"));
    let rfc = &challenges.dns01[1];
    assert_eq!(
        (rfc.ttl, rfc.propagation_timeout),
        (60, Duration::from_secs(300))
    );
    assert!(matches!(
        rfc.provider,
        certfleet::config::DnsProviderConfig::Rfc2136(certfleet::config::Rfc2136Config {
            tsig_algorithm: certfleet::config::TsigAlgorithm::HmacSha512,
            ..
        })
    ));
    let printed = loaded.config.to_redacted_yaml();
    assert!(
        !printed.contains("cf-token-from-file") && !printed.contains("c2VjcmV0"),
        "{printed}"
    );
    assert!(printed.contains("provider: rfc2136"), "{printed}");
}

#[test]
fn dns01_mistakes_name_the_key_and_the_fix() {
    let cases = [
        (
            "    - provider: route53\n",
            "challenges.dns01[0].provider: unknown provider \"route53\"; use cloudflare (alias cf)",
        ),
        (
            "    - provider: cloudflare\n",
            "challenges.dns01[0].apiToken: is required (or apiTokenFile)",
        ),
        (
            "    - provider: rfc2136\n      nameserver: ns1:53\n      tsigKeyName: k\n      tsigSecret: \"c2VjcmV0\"\n      apiToken: x\n",
            "challenges.dns01[0].apiToken: is a setting of the cloudflare provider, not of rfc2136",
        ),
        (
            "    - provider: rfc2136\n      nameserver: ns1:53\n      tsigKeyName: k\n      tsigSecret: \"not base64!\"\n",
            "challenges.dns01[0].tsigSecret: is not base64",
        ),
        (
            "    - provider: rfc2136\n      nameserver: ns1:53\n      tsigKeyName: k\n      tsigSecret: \"c2VjcmV0\"\n      tsigAlgorithm: hmac-md5\n",
            "tsigAlgorithm: \"hmac-md5\" is not supported",
        ),
        (
            "    - provider: gcloud\n      serviceAccount: '{\"type\": \"authorized_user\"}'\n",
            "challenges.dns01[0].serviceAccount: is a \"authorized_user\" credential",
        ),
        (
            "    - provider: cf\n      apiToken: t\n      zones: []\n",
            "challenges.dns01[0].zones: is empty",
        ),
        (
            "    - provider: cf\n      apiToken: t\n      apiUrl: \"http://api.example.com\"\n",
            "challenges.dns01[0].apiUrl: \"http://api.example.com\" is not an https:// URL",
        ),
        (
            "    - provider: cf\n      apiToken: t\n      pollingInterval: 5\n",
            "challenges.dns01[0].pollingInterval:",
        ),
        (
            "    - provider: cf\n      apiToken: t\n      nameservers: x\n",
            "challenges.dns01[0].nameservers: unknown key",
        ),
    ];
    for (entry, expected) in cases {
        let m = message(&format!("challenges:\n  dns01:\n{entry}"), &[]);
        assert!(m.contains(expected), "{entry} -> {m}");
        assert!(!m.contains("c2VjcmV0"), "no secret in {m}");
    }
    let m = message("challenges:\n  resolvers: [\"dns.example.com\"]\n", &[]);
    assert!(
        m.contains("challenges.resolvers[0]: \"dns.example.com\" is not an IP address"),
        "{m}"
    );
}

#[test]
fn the_admin_right_is_granted_per_credential() {
    let yaml = format!(
        "auth:\n  psk:\n    key: {KEY_B}\n    keys:\n      - name: ops\n        key: {KEY_A}\n        admin: true\n"
    );
    let psk = load(&yaml, &[]).config.auth.psk;
    let admin = |name: &str| psk.iter().find(|k| k.name == name).expect(name).admin;
    assert!(admin("ops"));
    assert!(!admin("default"), "the single key never administers");
    let fleet = load(&psk_yaml(KEY_A), &[]).config.auth.psk;
    assert!(!fleet[0].admin, "not an admin unless said");
    let from_env = load(
        &psk_yaml(KEY_A),
        &[("CERTFLEET_AUTH__PSK__KEYS__0__ADMIN", "true")],
    );
    assert!(from_env.config.auth.psk[0].admin);
    let m = message(
        &psk_yaml(KEY_A),
        &[("CERTFLEET_AUTH__PSK__KEYS__0__ADMIN", "yes please")],
    );
    assert!(
        m.contains("auth.psk.keys[0].admin") && m.contains("expected true or false"),
        "{m}"
    );

    let jwt = |extra: &str| {
        format!("auth:\n  jwt:\n    issuerUrl: https://idp.example.com\n    audience: x\n{extra}")
    };
    let config = load(&jwt("    adminScope: certfleet:admin\n"), &[]).config;
    assert_eq!(
        config.auth.jwt.expect("jwt").admin_scope.as_deref(),
        Some("certfleet:admin")
    );
    assert_eq!(
        load(&jwt(""), &[])
            .config
            .auth
            .jwt
            .expect("jwt")
            .admin_scope,
        None
    );
    let m = message(&jwt("    adminScope: \"a b\"\n"), &[]);
    assert!(m.contains("auth.jwt.adminScope: is not one scope"), "{m}");
}

/// A Standard Webhooks signing secret: `whsec_` and the base64 of 32 bytes.
const WHSEC: &str = "whsec_ZG9jcy10ZXN0LXdlYmhvb2stc2lnbmluZy1zZWNyZXQ=";
/// A webhook URL holding a token, which must never be printed.
const HOOK_URL: &str = "https://hooks.example.com/services/T0/B0/url-token-s3cr3t";

/// `notifications` with one standard webhook to `url` and the `extra` lines of that entry.
fn webhook_yaml(url: &str, extra: &str) -> String {
    format!(
        "notifications:\n  webhooks:\n    - name: ops\n      url: \"{url}\"\n      secret: \"{WHSEC}\"\n{extra}"
    )
}

/// `notifications.email` with `host`, a sender and a recipient, and the `extra` lines.
fn email_on(host: &str, extra: &str) -> String {
    format!(
        "notifications:\n  email:\n    host: \"{host}\"\n    from: certfleet@example.com\n    to: ops@example.com\n{extra}"
    )
}

/// [`email_on`] a remote host, `smtp.example.com`.
fn email_yaml(extra: &str) -> String {
    email_on("smtp.example.com", extra)
}

#[test]
fn notifications_take_every_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url_file = write_file(
        dir.path(),
        "url",
        "https://hooks.slack.com/services/T1/B1/x\n",
    );
    let secret_file = write_file(dir.path(), "secret", &format!("{WHSEC}\n"));
    let password_file = write_file(dir.path(), "password", "smtp-pa55word-from-file\n");
    let ca = write_file(
        dir.path(),
        "smtp-ca.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    let yaml = format!(
        "notifications:
  expiringAt: [\"20%\", 7d, \"2.5%\"]
  staleAfter: 12h
  retryInitial: 30s
  retryMax: 6h
  maxAge: 2d
  retention: 14d
  webhooks:
    - name: ops-alerts
      url: \"{HOOK_URL}\"
      secret: \"{WHSEC}\"
      events: [certificate.renewal_failed, certificate.expiring]
      format: standard
      timeout: 5s
    - urlFile: {url_file}
      secretFile: {secret_file}
      format: slack
      timeout: 1m
  email:
    host: smtp.example.com
    port: 2525
    tls: implicit
    username: certfleet
    passwordFile: {password_file}
    from: \"certfleet <certfleet@example.com>\"
    to: [ops@example.com, \"Dev Team <dev@example.com>\"]
    toByEvent:
      certificate.renewal_failed: oncall@example.com
      certfleet.test: [test@example.com]
    events: [certificate.issued, certificate.renewal_failed, delivery.stale]
    timeout: 5m
    caCertificates: {ca}
"
    );
    let loaded = load(&yaml, &[]);
    assert!(loaded.warnings.iter().all(|w| !w.contains("notifications")));
    let n = &loaded.config.notifications;
    assert!(!n.is_empty());
    assert_eq!(
        n.expiring_at,
        [
            ExpiryThreshold::Share(0.2),
            ExpiryThreshold::Left(Duration::from_secs(7 * 86_400)),
            ExpiryThreshold::Share(0.025),
        ]
    );
    assert_eq!(n.expiring_at[0].left_at(0, 90 * 86_400), 18 * 86_400);
    assert_eq!(
        (
            n.stale_after,
            n.retry_initial,
            n.retry_max,
            n.max_age,
            n.retention
        ),
        (
            Duration::from_secs(12 * 3600),
            Duration::from_secs(30),
            Duration::from_secs(6 * 3600),
            Duration::from_secs(2 * 86_400),
            Duration::from_secs(14 * 86_400),
        )
    );

    let ops = &n.webhooks[0];
    assert_eq!(ops.name, "ops-alerts");
    assert_eq!(ops.url.expose(), HOOK_URL);
    assert_eq!(ops.secret.as_ref().map(Secret::expose), Some(WHSEC));
    assert_eq!(ops.format, WebhookFormat::Standard);
    assert_eq!(ops.timeout, Duration::from_secs(5));
    assert!(ops.wants(EventType::CertificateExpiring) && ops.wants(EventType::Test));
    assert!(!ops.wants(EventType::CertificateIssued));
    let slack = &n.webhooks[1];
    assert!(
        slack.name.starts_with("webhook-") && slack.name.len() == 16,
        "{}",
        slack.name
    );
    assert_eq!(
        slack.url.expose(),
        "https://hooks.slack.com/services/T1/B1/x"
    );
    assert_eq!(slack.secret.as_ref().map(Secret::expose), Some(WHSEC));
    assert_eq!(slack.format, WebhookFormat::Slack);
    assert_eq!(slack.timeout, Duration::from_secs(60));
    assert!(EventType::ALL.into_iter().all(|e| slack.wants(e)));

    let email = n.email.as_ref().expect("notifications.email");
    assert_eq!(
        (email.host.as_str(), email.port),
        ("smtp.example.com", 2525)
    );
    assert_eq!(email.tls, SmtpTls::Implicit);
    assert_eq!(email.username.as_deref(), Some("certfleet"));
    assert_eq!(
        email.password.as_ref().map(Secret::expose),
        Some("smtp-pa55word-from-file")
    );
    assert_eq!(email.from, "certfleet <certfleet@example.com>");
    assert_eq!(email.to, ["ops@example.com", "Dev Team <dev@example.com>"]);
    assert_eq!(
        email.recipients(EventType::CertificateRenewalFailed),
        ["oncall@example.com"]
    );
    assert_eq!(email.recipients(EventType::Test), ["test@example.com"]);
    assert_eq!(
        email.recipients(EventType::DeliveryStale),
        email.to.as_slice()
    );
    assert!(email.wants(EventType::DeliveryStale) && !email.wants(EventType::CertificateRevoked));
    assert_eq!(email.timeout, Duration::from_secs(300));
    assert_eq!(email.ca_certificates.as_deref(), Some(Path::new(&ca)));

    let printed = loaded.config.to_redacted_yaml();
    for expected in [
        "name: ops-alerts",
        "format: slack",
        "tls: implicit",
        "staleAfter: 12h",
        "2.5%",
        "certificate.renewal_failed",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} missing from:\n{printed}"
        );
    }
}

#[test]
fn notifications_defaults_and_env_overrides() {
    let n = load("", &[]).config.notifications;
    assert!(n.is_empty() && n.webhooks.is_empty() && n.email.is_none());
    assert_eq!(
        n.expiring_at,
        [ExpiryThreshold::Share(0.3), ExpiryThreshold::Share(0.1)]
    );
    assert_eq!(
        (
            n.stale_after,
            n.retry_initial,
            n.retry_max,
            n.max_age,
            n.retention
        ),
        (
            Duration::from_secs(24 * 3600),
            Duration::from_secs(60),
            Duration::from_secs(24 * 3600),
            Duration::from_secs(3 * 86_400),
            Duration::from_secs(30 * 86_400),
        )
    );
    let email = load(&email_yaml(""), &[])
        .config
        .notifications
        .email
        .expect("email");
    assert_eq!((email.tls, email.port), (SmtpTls::StartTls, 587));
    assert_eq!(email.timeout, Duration::from_secs(30));
    let local = load(&email_on("localhost", "    tls: none\n"), &[]);
    let local = local.config.notifications.email.expect("email");
    assert_eq!((local.tls, local.port), (SmtpTls::None, 25));

    let loaded = load(
        &email_yaml(""),
        &[
            ("CERTFLEET_NOTIFICATIONS__STALE_AFTER", "5s"),
            ("CERTFLEET_NOTIFICATIONS__EXPIRING_AT", "50%, 1h"),
            (
                "CERTFLEET_NOTIFICATIONS__WEBHOOKS__0__URL",
                "http://127.0.0.1:9000/hook",
            ),
            ("CERTFLEET_NOTIFICATIONS__WEBHOOKS__0__FORMAT", "slack"),
            (
                "CERTFLEET_NOTIFICATIONS__WEBHOOKS__0__EVENTS",
                "certificate.issued,delivery.stale",
            ),
            ("CERTFLEET_NOTIFICATIONS__WEBHOOKS__0__TIMEOUT", "2s"),
            ("CERTFLEET_NOTIFICATIONS__EMAIL__PORT", "2525"),
            ("CERTFLEET_NOTIFICATIONS__EMAIL__TLS", "implicit"),
            ("CERTFLEET_NOTIFICATIONS__EMAIL__TO", "env@example.com"),
        ],
    );
    let n = &loaded.config.notifications;
    assert_eq!(n.stale_after, Duration::from_secs(5));
    assert_eq!(
        n.expiring_at,
        [
            ExpiryThreshold::Share(0.5),
            ExpiryThreshold::Left(Duration::from_secs(3600))
        ]
    );
    let hook = &n.webhooks[0];
    assert_eq!(hook.url.expose(), "http://127.0.0.1:9000/hook");
    assert_eq!(hook.format, WebhookFormat::Slack);
    assert_eq!(
        hook.events.as_deref(),
        Some([EventType::CertificateIssued, EventType::DeliveryStale].as_slice())
    );
    assert_eq!(hook.timeout, Duration::from_secs(2));
    let email = n.email.as_ref().expect("email");
    assert_eq!((email.port, email.tls), (2525, SmtpTls::Implicit));
    assert_eq!(email.to, ["env@example.com"]);
    let off = load("", &[("CERTFLEET_NOTIFICATIONS__EXPIRING_AT", "")]);
    assert!(off.config.notifications.expiring_at.is_empty());

    let m = message("", &[("CERTFLEET_NOTIFICATIONS__RETRY_MAX", "soon")]);
    assert!(
        m.contains("notifications.retryMax (from CERTFLEET_NOTIFICATIONS__RETRY_MAX): \"soon\""),
        "{m}"
    );
    let m = message(
        "",
        &[("CERTFLEET_NOTIFICATIONS__WEBHOOKS__0__URL", HOOK_URL)],
    );
    assert!(
        m.contains("notifications.webhooks[0].secret: is required with format standard"),
        "{m}"
    );
    assert!(!m.contains("url-token-s3cr3t"), "{m}");
}

#[test]
fn a_bad_webhook_secret_says_how_to_make_one() {
    for (secret, expected) in [
        (
            "ZG9jcy10ZXN0LXdlYmhvb2stc2lnbmluZy1zZWNyZXQ=",
            "does not start with whsec_",
        ),
        ("whsec_c2hvcnQtc2VjcmV0LTE2Yg==", "decodes to 16 bytes"),
        ("whsec_not base64 at all!", "is not standard base64"),
    ] {
        let yaml = format!(
            "notifications:\n  webhooks:\n    - url: https://hooks.example.com/x\n      secret: \"{secret}\"\n"
        );
        let m = message(&yaml, &[]);
        assert!(
            m.contains(&format!("notifications.webhooks[0].secret: {expected}")),
            "{m}"
        );
        assert!(
            m.contains("echo \"whsec_$(openssl rand -base64 32)\""),
            "{m}"
        );
        assert!(!m.contains(secret), "the secret is not echoed: {m}");
    }
    let m = message(
        "notifications:\n  webhooks:\n    - url: https://hooks.example.com/x\n",
        &[],
    );
    assert!(
        m.contains("notifications.webhooks[0].secret: is required with format standard")
            && m.contains("openssl rand -base64 32"),
        "{m}"
    );
    // Optional for slack.
    let slack = "notifications:\n  webhooks:\n    - url: https://hooks.example.com/x\n      format: slack\n";
    assert!(
        load(slack, &[]).config.notifications.webhooks[0]
            .secret
            .is_none()
    );
}

#[test]
fn webhook_urls_are_https_except_on_loopback_and_never_printed() {
    let m = message(
        &webhook_yaml("http://hooks.example.com/services/T0/B0/tok3n", ""),
        &[],
    );
    assert!(
        m.contains("notifications.webhooks[0].url: uses http:// for a host that is not loopback")
            && m.contains("use https://")
            && m.contains("127.0.0.0/8, ::1 and localhost"),
        "{m}"
    );
    assert!(
        !m.contains("tok3n") && !m.contains("hooks.example.com"),
        "{m}"
    );
    for bad in [
        "http://10.0.0.1/hook",
        "https://user:pa55@hooks.example.com/hook",
        "hooks.example.com/hook",
        "ftp://hooks.example.com/hook",
    ] {
        let m = message(&webhook_yaml(bad, ""), &[]);
        assert!(m.contains("notifications.webhooks[0].url: "), "{bad}: {m}");
        assert!(!m.contains(bad) && !m.contains("pa55"), "{bad}: {m}");
    }
    for good in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]:8080/hook",
        "https://hooks.example.com/hook?token=x",
    ] {
        let hooks = load(&webhook_yaml(good, ""), &[])
            .config
            .notifications
            .webhooks;
        assert_eq!(hooks[0].url.expose(), good);
    }
    let m = message(
        "notifications:\n  webhooks:\n    - name: ops\n      secret: x\n",
        &[],
    );
    assert!(
        m.contains("notifications.webhooks[0].url: is required (or urlFile)"),
        "{m}"
    );
}

#[test]
fn unknown_event_types_list_the_valid_ones() {
    let m = message(
        &webhook_yaml(
            HOOK_URL,
            "      events: [certificate.issued, certificate.expired, certfleet.test]\n",
        ),
        &[],
    );
    assert!(
        m.contains(
            "notifications.webhooks[0].events[1]: \"certificate.expired\" is not an event type; \
             use one of certificate.issued, certificate.renewed, certificate.renewal_failed, \
             certificate.expiring, certificate.revoked, certificate.deleted, \
             certificate.renewal_advanced, delivery.stale"
        ),
        "{m}"
    );
    assert!(
        m.contains("notifications.webhooks[0].events[2]: \"certfleet.test\" is the test event"),
        "{m}"
    );
    let m = message(&webhook_yaml(HOOK_URL, "      events: []\n"), &[]);
    assert!(
        m.contains("notifications.webhooks[0].events: is empty"),
        "{m}"
    );
    let m = message(&email_yaml("    events: [cert.issued]\n"), &[]);
    assert!(
        m.contains("notifications.email.events[0]: \"cert.issued\" is not an event type"),
        "{m}"
    );
    let m = message(
        &email_yaml("    toByEvent:\n      certificate.issud: [a@example.com]\n"),
        &[],
    );
    assert!(
        m.contains(
            "notifications.email.toByEvent.certificate.issud: \"certificate.issud\" is not an \
             event type; use one of certificate.issued"
        ),
        "{m}"
    );
}

#[test]
fn tls_none_is_refused_for_a_remote_smtp_server() {
    let m = message(&email_yaml("    tls: none\n"), &[]);
    assert!(
        m.contains("notifications.email.tls: is none, but smtp.example.com is not loopback")
            && m.contains("cross the network in clear")
            && m.contains("use starttls"),
        "{m}"
    );
    for host in ["localhost", "127.0.0.1", "::1", "[::1]"] {
        let yaml = email_on(host, "    tls: none\n");
        let email = load(&yaml, &[]).config.notifications.email.expect("email");
        assert_eq!(email.tls, SmtpTls::None, "{host}");
    }
    let m = message(&email_yaml("    tls: ssl\n"), &[]);
    assert!(
        m.contains("notifications.email.tls: \"ssl\" is not a choice"),
        "{m}"
    );
}

#[test]
fn smtp_credentials_go_together() {
    let m = message(&email_yaml("    password: hunter2-smtp\n"), &[]);
    assert!(
        m.contains("notifications.email.password: is set without notifications.email.username"),
        "{m}"
    );
    assert!(!m.contains("hunter2-smtp"), "{m}");
    let m = message(&email_yaml("    username: certfleet\n"), &[]);
    assert!(
        m.contains("notifications.email.password: is required with username"),
        "{m}"
    );
    let both = email_yaml("    username: certfleet\n    password: hunter2-smtp\n");
    let email = load(&both, &[]).config.notifications.email.expect("email");
    assert_eq!(
        email.password.as_ref().map(Secret::expose),
        Some("hunter2-smtp")
    );
}

#[test]
fn webhook_names_are_unique() {
    let yaml = format!(
        "notifications:\n  webhooks:\n    - name: ops\n      url: {HOOK_URL}\n      secret: {WHSEC}\n    - name: ops\n      url: https://other.example.com/hook\n      format: slack\n"
    );
    let m = message(&yaml, &[]);
    assert!(
        m.contains("notifications.webhooks[1].name: \"ops\" is already the name of notifications.webhooks[0]"),
        "{m}"
    );
    let same_url = format!(
        "notifications:\n  webhooks:\n    - url: {HOOK_URL}\n      secret: {WHSEC}\n    - url: {HOOK_URL}\n      format: slack\n"
    );
    let m = message(&same_url, &[]);
    assert!(
        m.contains("notifications.webhooks[1].name: \"webhook-")
            && m.contains("the two have the same URL; give each its own name"),
        "{m}"
    );
    assert!(!m.contains("url-token-s3cr3t"), "{m}");
    let long = format!(
        "notifications:\n  webhooks:\n    - name: {}\n      url: {HOOK_URL}\n      format: slack\n",
        "n".repeat(65)
    );
    let m = message(&long, &[]);
    assert!(
        m.contains("notifications.webhooks[0].name: is 65 characters; use at most 64"),
        "{m}"
    );
}

#[test]
fn notification_problems_are_reported_together() {
    let yaml = "notifications:\n  staleAfter: 500ms\n  retryInitial: 2h\n  retryMax: 1h\n  maxAge: 1h\n  retention: 30m\n  webhooks:\n    - url: http://hooks.example.com/x\n      secret: nope\n      timeout: 2m\n  email:\n    host: \"smtp.example.com:25\"\n    port: 0\n    from: \"a@b@example.com\"\n    to: [ops@example.com, \"dev\"]\n    timeout: 10m\n    caCertificates: /nonexistent/ca.pem\n";
    let e = error(yaml, &[]);
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    for key in [
        "notifications.webhooks[0].url",
        "notifications.webhooks[0].secret",
        "notifications.webhooks[0].timeout",
        "notifications.email.host",
        "notifications.email.port",
        "notifications.email.from",
        "notifications.email.to[1]",
        "notifications.email.timeout",
        "notifications.email.caCertificates",
        "notifications.staleAfter",
        "notifications.retryMax",
        "notifications.maxAge",
        "notifications.retention",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let m = e.to_string();
    assert!(
        m.contains("\"2m\" is longer than the 60s maximum (default 10s)"),
        "{m}"
    );
    assert!(
        m.contains("\"500ms\" is shorter than the 1s minimum (default 1d)"),
        "{m}"
    );
    assert!(
        m.contains("notifications.retryMax: is 1h, shorter than notifications.retryInitial (2h)")
            && m.contains("notifications.retention: is 30m, shorter than notifications.maxAge"),
        "{m}"
    );
    assert!(
        !m.contains("is required unless toByEvent"),
        "a bad item is not a missing one: {m}"
    );
    let m = message(
        &email_yaml("").replace("    to: ops@example.com\n", ""),
        &[],
    );
    assert!(
        m.contains("notifications.email.to: is required unless toByEvent"),
        "{m}"
    );
}

#[test]
fn notification_secrets_are_redacted() {
    let yaml = format!(
        "{}  email:\n    host: smtp.example.com\n    username: certfleet\n    password: \"smtp-hunter2-password\"\n    from: certfleet@example.com\n    to: ops@example.com\n",
        webhook_yaml(HOOK_URL, "")
    );
    let config = load(&yaml, &[]).config;
    for printed in [config.to_redacted_yaml(), format!("{config:?}")] {
        for secret in [HOOK_URL, "url-token-s3cr3t", WHSEC, "smtp-hunter2-password"] {
            assert!(!printed.contains(secret), "{secret} leaked in {printed}");
        }
        assert!(printed.contains("<redacted>"), "{printed}");
    }
    let printed = config.to_redacted_yaml();
    assert!(
        printed.contains("name: ops") && printed.contains("username: certfleet"),
        "{printed}"
    );
}

#[test]
fn limits_default_to_lets_encrypts_for_its_directories_and_name_the_key_when_wrong() {
    // Another CA: no limit unless configured; the reserve's default.
    let config = load("acme:\n  directoryUrl: https://ca.example/dir\n", &[]).config;
    assert_eq!(config.limits.per_registered_domain, None);
    assert_eq!(config.limits.per_account, None);
    assert_eq!(config.limits.renewal_reserve, 20);
    // Let's Encrypt's directory (the default one): its published limits.
    assert_eq!(
        load("", &[]).config.limits,
        load(
            "acme:\n  directoryUrl: https://acme-staging-v02.api.letsencrypt.org/directory\n",
            &[]
        )
        .config
        .limits
    );
    let le = "acme:\n  directoryUrl: https://acme-v02.api.letsencrypt.org/directory\n";
    let config = load(le, &[]).config;
    let week = Duration::from_secs(7 * 86_400);
    let limit = |count, window| Some(Limit { count, window });
    assert_eq!(config.limits.per_registered_domain, limit(50, week));
    assert_eq!(config.limits.per_exact_set, limit(5, week));
    assert_eq!(
        config.limits.per_account,
        limit(300, Duration::from_secs(3 * 3600))
    );
    assert_eq!(
        config.limits.failed_validations,
        limit(5, Duration::from_secs(3600))
    );
    // Configured keys override one at a time; a count of 0 turns one off; `enabled: false` all.
    let config = load(
        &format!(
            "{le}limits:\n  perExactSet: {{count: 0, window: 1d}}\n  renewalReserve: 10%\n  \
             renewalPace: {{count: 10, window: 1m}}\n  perAccount: {{count: 7, window: 1h}}\n"
        ),
        &[("CERTFLEET_LIMITS__PER_ACCOUNT__COUNT", "100")],
    )
    .config;
    assert_eq!(config.limits.per_exact_set, None);
    assert_eq!(
        config.limits.per_account,
        limit(100, Duration::from_secs(3600))
    );
    assert_eq!(config.limits.renewal_reserve, 10);
    assert_eq!(
        config.limits.renewal_pace,
        limit(10, Duration::from_secs(60))
    );
    let config = load(&format!("{le}limits:\n  enabled: false\n"), &[]).config;
    assert_eq!(config.limits, LimitsConfig::default());
    // Mistakes name the key and the fix.
    let m = message(
        "limits:\n  perRegisteredDomain: {count: lots, window: 7d}\n  perAccount: {count: 3}\n  \
         failedValidations: {count: 5, window: 5 hours}\n  renewalReserve: 150%\n",
        &[],
    );
    for expected in [
        "limits.perRegisteredDomain.count: \"lots\" is not a count; give a whole number",
        "limits.perAccount.window: is missing; give the window",
        "limits.failedValidations.window",
        "limits.renewalReserve: \"150%\" is not a share; write a percentage from 0% to 100%",
    ] {
        assert!(m.contains(expected), "{expected}\nin\n{m}");
    }
    let m = message(
        "auth:\n  psk:\n    keys:\n      - name: q\n        key: \"0123456789abcdef0123456789abcdef\"\n        \
         quota: {count: 2, window: 0}\n",
        &[],
    );
    assert!(
        m.contains("auth.psk.keys[0].quota.window: \"0\" is too short"),
        "{m}"
    );
}
