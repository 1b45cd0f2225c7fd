#!/usr/bin/env python3
"""Offline checks of the Helm chart in charts/certfleet (run by scripts/check-chart.sh).

No cluster and no helm binary: helm-python-sdk (Helm's Go SDK as a library) lints and renders,
kubernetes-validate checks every manifest against Kubernetes' schemas, and the certfleet binary
checks that every rendered configuration is one it accepts:

1. lint, strict, with the default values and with each example values file;
2. render each values set (defaults, every file in examples/, and variants: ServiceMonitor +
   Ingress, structured secrets on PostgreSQL, the Akash shapes with a Google key passed as
   --set-file would, an HTTP-01 port below 1024);
3. validate every manifest with `kubernetes-validate -k 1.31.0 --strict`; the ServiceMonitor is a
   Prometheus Operator CRD for which kubernetes-validate has no schema (it would only warn), so it
   is checked here against a structural schema of the fields the chart emits, and against the
   Service it must select;
4. check the chart's promises on each render: security context, probes (HTTPS with server.tls),
   ports, Recreate + PVC with SQLite / RollingUpdate and no PVC with PostgreSQL, checksums, and
   no secret in the ConfigMap;
5. renders that must fail: several replicas on SQLite (the message names postgres://),
   PostgreSQL without an encryption key, and other refusals;
6. extract the ConfigMap's config and the Secret's files into a temporary directory, rewrite the
   file paths to it, and run `certfleet check-config --config FILE` with the pod's CERTFLEET_*
   environment: exit 0 expected.

Prints PASS/FAIL per check; exits 1 on any failure.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jsonschema
import yaml

import helm_python as helm

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "certfleet"
EXAMPLES = CHART / "examples"
KUBE_VERSION = "1.31.0"
CERTFLEET_BIN = os.environ.get("CERTFLEET_BIN", str(ROOT / "target" / "debug" / "certfleet"))
RELEASE, NAMESPACE = "certfleet", "certfleet"

# Keys another change is adding to certfleet right now; until it lands, the binary refuses them.
PENDING_KEYS = {"log", "server.metricsListen"}

# In-pod directories the chart mounts, rewritten to the temporary directory for check-config.
MOUNTS = {
    "/etc/certfleet/secrets": "secrets",
    "/etc/certfleet/existing-secret": "existing-secret",
    "/etc/certfleet/tls": "tls",
}

# Inline secret keys that must never reach the ConfigMap (each has an xFile form), by the path
# of the map holding them ("*" = any item of a list).
SECRET_KEYS = {
    ("storage",): {"encryptionKey", "previousEncryptionKeys"},
    ("acme", "eab"): {"hmacKey"},
    ("auth", "psk"): {"key"},
    ("auth", "psk", "keys", "*"): {"key"},
    ("challenges", "dns01", "*"): {"apiToken", "serviceAccount", "tsigSecret"},
}

failures = 0


def report(ok: bool, name: str, detail: str = "") -> bool:
    global failures
    if not ok:
        failures += 1
    line = f"{'PASS' if ok else 'FAIL'}  {name}"
    if detail:
        line += "\n" + "\n".join("      " + part for part in detail.rstrip().splitlines())
    print(line, flush=True)
    return ok


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's -f / --set merge: maps merged key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def gcloud_key_json() -> str:
    """A Google service-account key file with a fresh RSA key (as --set-file would pass one)."""
    pem = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.dumps({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "certfleet-dns@my-project.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }, indent=2)


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text()) or {}


# --------------------------------------------------------------------------- the values sets

def value_sets() -> list[tuple[str, dict[str, Any]]]:
    sets: list[tuple[str, dict[str, Any]]] = [("defaults", {})]
    for path in sorted(EXAMPLES.glob("*.yaml")):
        sets.append((f"examples/{path.name}", example(path.name)))
    sets.append(("examples/akash-enabled-values.yaml + --set-file googleCloud.serviceAccount.content", merge(
        example("akash-enabled-values.yaml"),
        {"letsEncrypt": {"providers": {"googleCloud": {"serviceAccount": {"content": gcloud_key_json()}}}}},
    )))
    sets.append(("examples/akash-values.yaml + httpChallengePort 80 (sysctl)", merge(
        example("akash-values.yaml"), {"letsEncrypt": {"acme": {"httpChallengePort": 80}}},
    )))
    sets.append(("ServiceMonitor + Ingress + TLS Secret", {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {
                "nginx.ingress.kubernetes.io/ssl-passthrough": "true",
                "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
            },
            "hosts": [{"host": "certs.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"hosts": ["certs.example.com"]}],
        },
        "tls": {"secretName": "certfleet-tls"},
        "config": {"auth": {"psk": {"keys": [
            {"name": "fleet-a", "key": "EXAMPLE-ONLY-" + "a" * 40, "domains": ["*.a.example.com"]},
        ]}}},
    }))
    sets.append(("structured secrets on PostgreSQL, 2 replicas, metrics off", {
        "replicaCount": 2,
        "metrics": {"enabled": False},
        "secrets": {
            "databaseUrl": "postgres://certfleet:p%40ss@db.internal:5432/certfleet?sslmode=verify-full",
            "encryptionKey": base64.b64encode(secrets.token_bytes(32)).decode(),
            "previousEncryptionKeys": [base64.b64encode(secrets.token_bytes(32)).decode()],
            "eabHmacKey": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
            "pskKey": "EXAMPLE-single-key-for-every-domain-0123",
        },
        "config": {"acme": {"eab": {"kid": "kid-from-your-ca"}}},
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    }))
    sets.append(("TLS-ALPN-01 on a port of its own", {"containerPorts": {"tlsAlpn01": 8444}}))
    sets.append(("TLS-ALPN-01 on the API's TLS listener", {
        "containerPorts": {"tlsAlpn01": 8443},
        "tls": {"secretName": "certfleet-tls"},
    }))
    sets.append(("existing Secret for everything, SQLite", {
        "existingSecret": {"name": "certfleet-operator", "keys": {
            "encryptionKey": "encryption-key", "previousEncryptionKeys": "previous-keys",
            "eabHmacKey": "eab-hmac", "pskKey": "psk"}},
        "config": {"acme": {"eab": {"kid": "kid-from-your-ca"}}},
    }))
    return sets


# Renders that must fail, with a word their message must contain.
MUST_FAIL = [
    ("replicaCount 3 on the default SQLite", {"replicaCount": 3}, "postgres://"),
    ("replicaCount 2 with a sqlite:// storage.url",
     {"replicaCount": 2, "config": {"storage": {"url": "sqlite:///var/lib/certfleet/x.db"}}}, "postgres://"),
    ("PostgreSQL without an encryption key",
     {"secrets": {"databaseUrl": "postgres://u:p@db/certfleet"}}, "encryptionKey"),
    ("letsEncrypt cf without an apiToken",
     {"letsEncrypt": {"enabled": True, "dns": {"providers": ["cf"]}}}, "apiToken"),
    ("letsEncrypt unknown provider",
     {"letsEncrypt": {"enabled": True, "dns": {"providers": ["route53"]}}}, "route53"),
    ("an encryption key given twice",
     {"config": {"storage": {"encryptionKey": "a"}}, "secrets": {"encryptionKey": "b"}}, "twice"),
    ("config.server.listen against the chart's port",
     {"config": {"server": {"listen": "0.0.0.0:1234"}}}, "set by the chart"),
    ("RollingUpdate on the SQLite volume", {"strategy": {"type": "RollingUpdate"}}, "Recreate"),
    ("config.challenges.tlsAlpn01 without containerPorts.tlsAlpn01",
     {"config": {"challenges": {"tlsAlpn01": {}}}}, "containerPorts.tlsAlpn01"),
    ("config.challenges.tlsAlpn01.listen against the chart's port",
     {"containerPorts": {"tlsAlpn01": 8444}, "config": {"challenges": {"tlsAlpn01": {"listen": "0.0.0.0:9"}}}},
     "set by the chart"),
    ("TLS-ALPN-01 on the API's port without server.tls", {"containerPorts": {"tlsAlpn01": 8443}}, "tls.secretName"),
]


# --------------------------------------------------------------------------- rendering

def render(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = [d for d in docs if d.get("kind") == kind]
    return found[0] if found else None


# --------------------------------------------------------------------------- ServiceMonitor

DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
# The fields of monitoring.coreos.com/v1 ServiceMonitor the chart emits, as the Prometheus
# Operator's CRD types them (a subset: unknown fields are refused, like --strict).
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                           "namespace": {"type": "string"}, "labels": LABELS, "annotations": LABELS},
        },
        "spec": {
            "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "additionalProperties": False,
                             "properties": {"matchLabels": LABELS, "matchExpressions": {"type": "array"}}},
                "namespaceSelector": {"type": "object", "additionalProperties": False,
                                      "properties": {"any": {"type": "boolean"},
                                                     "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"}, "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": DURATION, "scrapeTimeout": DURATION,
                        "relabelings": {"type": "array", "items": {"type": "object"}},
                        "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                    },
                }},
            },
        },
    },
}


def check_service_monitor(monitor: dict[str, Any], docs: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    try:
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(monitor)
    except jsonschema.ValidationError as e:
        problems.append(f"schema: {'.'.join(map(str, e.path))}: {e.message}")
    service = one(docs, "Service")
    if service is None:
        return problems + ["no Service for the ServiceMonitor to select"]
    wanted = monitor["spec"]["selector"].get("matchLabels", {})
    labels = service["metadata"].get("labels", {})
    if any(labels.get(k) != v for k, v in wanted.items()):
        problems.append(f"selector {wanted} does not match the Service's labels")
    names = monitor["spec"].get("namespaceSelector", {}).get("matchNames")
    if names is not None and service["metadata"]["namespace"] not in names:
        problems.append("namespaceSelector misses the Service's namespace")
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        if endpoint.get("port") not in ports:
            problems.append(f"endpoint port {endpoint.get('port')!r} is not a Service port ({sorted(ports)})")
    return problems


def kubernetes_validate(docs: list[dict[str, Any]], work: Path) -> tuple[bool, str]:
    path = work / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    run = subprocess.run(
        ["kubernetes-validate", "-k", KUBE_VERSION, "--strict", "--quiet", str(path)],
        capture_output=True, text=True,
    )
    output = (run.stdout + run.stderr).strip()
    # --quiet prints only warnings and failures; a WARN is a kind without a schema, which would
    # otherwise pass unvalidated.
    ok = run.returncode == 0 and not output
    return ok, output or f"{len(docs)} manifests valid"


# --------------------------------------------------------------------------- the chart's promises

def walk(tree: Any, path: tuple[str, ...] = ()):
    if isinstance(tree, dict):
        yield path, tree
        for key, value in tree.items():
            yield from walk(value, path + (key,))
    elif isinstance(tree, list):
        for item in tree:
            yield from walk(item, path + ("*",))


def invariants(name: str, values: dict[str, Any], docs: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    deploy = one(docs, "Deployment")
    cm = one(docs, "ConfigMap")
    svc = one(docs, "Service")
    secret = one(docs, "Secret")
    if not (deploy and cm and svc):
        return ["missing Deployment, ConfigMap or Service"]
    config = yaml.safe_load(cm["data"]["certfleet.yaml"])
    pod = deploy["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]

    def expect(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    # security
    psc, csc = spec.get("securityContext", {}), container.get("securityContext", {})
    expect(spec.get("enableServiceLinks") is False, "enableServiceLinks is not false")
    expect(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532 and psc.get("runAsGroup") == 65532,
           "pod: runAsNonRoot / uid / gid 65532")
    expect(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod: seccompProfile RuntimeDefault")
    expect(csc.get("readOnlyRootFilesystem") is True, "container: readOnlyRootFilesystem")
    expect(csc.get("allowPrivilegeEscalation") is False, "container: allowPrivilegeEscalation false")
    expect(csc.get("capabilities", {}).get("drop") == ["ALL"], "container: capabilities drop ALL")
    expect(csc.get("runAsNonRoot") is True, "container: runAsNonRoot")

    # config the pod depends on
    server = config.get("server", {})
    https = bool(server.get("tls"))
    expect(server.get("listen") == "0.0.0.0:8443", f"server.listen is {server.get('listen')!r}")
    metrics_on = values.get("metrics", {}).get("enabled", True)
    expect(server.get("metricsListen") == ("0.0.0.0:9090" if metrics_on else ""),
           f"server.metricsListen is {server.get('metricsListen')!r}")
    http01_listen = config.get("challenges", {}).get("http01", {}).get("listen", "")
    expect(re.fullmatch(r"0\.0\.0\.0:\d+", http01_listen) is not None, f"challenges.http01.listen is {http01_listen!r}")
    http01_port = int(http01_listen.rsplit(":", 1)[1]) if ":" in http01_listen else -1
    if "log" not in values.get("config", {}):
        expect(config.get("log", {}).get("format") == "json", "log.format is not json by default")

    # the image's ENV for the listen addresses overrides the config file: the pod must set them
    # to the config's values; and its ENTRYPOINT already says `serve`, so the command is explicit
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    for var, value in (("CERTFLEET_SERVER__LISTEN", server.get("listen")),
                       ("CERTFLEET_CHALLENGES__HTTP01__LISTEN", http01_listen),
                       ("CERTFLEET_SERVER__METRICS_LISTEN", server.get("metricsListen"))):
        expect(env.get(var) == value, f"env {var}={env.get(var)!r}, config says {value!r}")
    expect(container.get("command") == ["/usr/local/bin/certfleet"] and container.get("args") == ["serve"],
           f"command {container.get('command')} args {container.get('args')}")

    # ports: container and Service
    cports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expect(cports.get("api") == 8443, f"container port api {cports.get('api')}")
    expect(cports.get("http01") == http01_port, f"container port http01 {cports.get('http01')} != {http01_port}")
    expect((cports.get("metrics") == 9090) if metrics_on else ("metrics" not in cports), "container port metrics")
    sports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    expect(sports.get("api") == (8443, "api"), f"Service api {sports.get('api')}")
    expect(sports.get("http01") == (80, "http01"), f"Service http01 {sports.get('http01')}")
    expect((sports.get("metrics") == (9090, "metrics")) if metrics_on else ("metrics" not in sports), "Service metrics")
    # TLS-ALPN-01: off unless containerPorts.tlsAlpn01; then the config, the pod and the Service agree
    alpn_port = int(values.get("containerPorts", {}).get("tlsAlpn01", 0))
    alpn_listen = config.get("challenges", {}).get("tlsAlpn01", {}).get("listen")
    sport_alpn = sports.get("tls-alpn-01")
    if alpn_port == 0:
        expect(alpn_listen is None and "tls-alpn-01" not in cports and sport_alpn is None,
               f"TLS-ALPN-01 without containerPorts.tlsAlpn01: {alpn_listen!r} {cports} {sport_alpn}")
    else:
        expect(alpn_listen == f"0.0.0.0:{alpn_port}", f"challenges.tlsAlpn01.listen is {alpn_listen!r}")
        on_api = alpn_port == cports.get("api")
        expect(on_api == (alpn_listen == server.get("listen")), "TLS-ALPN-01 on the API listener or its own")
        expect(("tls-alpn-01" not in cports) if on_api else (cports.get("tls-alpn-01") == alpn_port),
               f"container port tls-alpn-01 {cports.get('tls-alpn-01')}")
        expect(sport_alpn == (443, "api" if on_api else "tls-alpn-01"), f"Service tls-alpn-01 {sport_alpn}")
        expect(not on_api or https, "TLS-ALPN-01 on the API listener without server.tls")
    if 0 < http01_port < 1024:
        sysctls = {s["name"]: s["value"] for s in psc.get("sysctls", [])}
        expect(sysctls.get("net.ipv4.ip_unprivileged_port_start") == str(http01_port),
               "HTTP-01 port below 1024 without the unprivileged-port sysctl")

    # probes
    scheme = "HTTPS" if https else "HTTP"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        expect(get.get("path") == path and get.get("port") == "api" and get.get("scheme") == scheme,
               f"{probe}: {get} (want {path} on api, {scheme})")

    # storage: PostgreSQL or SQLite on a volume
    storage = config.get("storage", {})
    postgres = "urlFile" in storage or str(storage.get("url", "")).startswith(("postgres://", "postgresql://"))
    pvc = one(docs, "PersistentVolumeClaim")
    strategy = deploy["spec"]["strategy"]["type"]
    if postgres:
        expect(pvc is None, "a PVC is rendered with PostgreSQL")
        expect(strategy == "RollingUpdate", f"strategy {strategy} with PostgreSQL")
        expect(bool(storage.get("encryptionKeyFile")), "PostgreSQL without storage.encryptionKeyFile")
    else:
        expect(str(storage.get("url", "")).startswith("sqlite:///var/lib/certfleet/"), f"storage.url {storage.get('url')!r}")
        expect(pvc is not None, "no PVC for the SQLite file")
        expect(strategy == "Recreate", f"strategy {strategy} with SQLite")
        expect(int(deploy["spec"]["replicas"]) == 1, "several replicas on SQLite")

    # rolling on change
    annotations = pod["metadata"].get("annotations", {})
    expect("checksum/config" in annotations and "checksum/secret" in annotations, "checksum annotations missing")

    # secrets: files only, never in the ConfigMap
    for path, node in walk(config):
        for pattern, keys in SECRET_KEYS.items():
            if path == pattern:
                leaked = sorted(k for k in keys if k in node)
                expect(not leaked, f"inline secret {'.'.join(path)}.{leaked} in the ConfigMap")
    expect(not str(storage.get("url", "")).startswith(("postgres://", "postgresql://")),
           "a PostgreSQL URL in the ConfigMap")
    secret_files = {k: base64.b64decode(v).decode() for k, v in (secret or {}).get("data", {}).items()}
    cm_text = cm["data"]["certfleet.yaml"]
    for key, content in secret_files.items():
        expect(content.strip() not in cm_text, f"the Secret's {key} also appears in the ConfigMap")
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    for _, node in walk(config):
        for key, value in node.items():
            if not (key.endswith("File") and isinstance(value, str)):
                continue
            directory, _, file = value.rpartition("/")
            if directory == "/etc/certfleet/secrets":
                expect(file in secret_files, f"{key}: {value} is not in the chart's Secret")
            if directory in MOUNTS:
                expect(directory in mounts, f"{key}: {directory} is not mounted")
    return problems


# --------------------------------------------------------------------------- check-config

def synthesize(key: str) -> str:
    """Stand-in content for a file of an operator-made Secret, by the config key naming it."""
    if key == "urlFile":
        return "postgres://certfleet:secret@db.internal:5432/certfleet?sslmode=verify-full"
    if key in ("encryptionKeyFile", "CERTFLEET_STORAGE__PREVIOUS_ENCRYPTION_KEYS"):
        return base64.b64encode(secrets.token_bytes(32)).decode()
    if key == "hmacKeyFile":
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    if key == "tsigSecretFile":
        return base64.b64encode(secrets.token_bytes(32)).decode()
    if key == "serviceAccountFile":
        return gcloud_key_json()
    return secrets.token_urlsafe(36)  # keyFile (PSK), apiTokenFile


def self_signed(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-subj", "/CN=certs.example.com", "-days", "1",
         "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")],
        check=True, capture_output=True,
    )


def rewrite(tree: Any, root: Path, parent_key: str = "") -> Any:
    """The config with in-pod mount paths moved under root; stand-ins made for files of Secrets
    the chart does not render (an existing Secret, the TLS Secret)."""
    if isinstance(tree, dict):
        return {k: rewrite(v, root, k) for k, v in tree.items()}
    if isinstance(tree, list):
        return [rewrite(v, root, parent_key) for v in tree]
    if isinstance(tree, str):
        for mount, sub in MOUNTS.items():
            if tree.startswith(mount + "/"):
                local = root / sub / tree[len(mount) + 1:]
                if not local.exists():
                    if sub == "tls":
                        self_signed(local.parent)
                    elif sub == "existing-secret":
                        local.parent.mkdir(parents=True, exist_ok=True)
                        local.write_text(synthesize(parent_key) + "\n")
                return str(local)
    return tree


def problem_keys(stderr: str) -> list[str]:
    keys = re.findall(r"^\s+- ([^:\s]+):", stderr, flags=re.M)
    if not keys:
        keys = re.findall(r"invalid configuration: ([^:\s]+):", stderr)
    return keys


def strip_pending(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config.pop("log", None)
    config.get("server", {}).pop("metricsListen", None)
    return config


def check_config(name: str, docs: list[dict[str, Any]], values: dict[str, Any], work: Path) -> None:
    title = f"check-config accepts the rendered config [{name}]"
    cm, secret, deploy = one(docs, "ConfigMap"), one(docs, "Secret"), one(docs, "Deployment")
    config = yaml.safe_load(cm["data"]["certfleet.yaml"])
    root = work / "pod"
    (root / "secrets").mkdir(parents=True)
    secret_data = {k: base64.b64decode(v) for k, v in (secret or {}).get("data", {}).items()}
    for key, content in secret_data.items():
        (root / "secrets" / key).write_bytes(content)
    local = rewrite(config, root)

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work)}
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    existing = values.get("existingSecret", {}).get("name")
    for item in container.get("env", []):
        if item["name"] == "CERTFLEET_CONFIG":
            continue
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if secret and ref["name"] == secret["metadata"]["name"]:
            env[item["name"]] = secret_data[ref["key"]].decode()
        elif ref["name"] == existing:
            env[item["name"]] = synthesize(item["name"])
        else:
            report(False, title, f"env {item['name']} reads Secret {ref['name']!r}, which is neither the chart's nor existingSecret")
            return

    def run(cfg: dict[str, Any], file: str) -> subprocess.CompletedProcess[str]:
        path = work / file
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return subprocess.run([CERTFLEET_BIN, "check-config", "--config", str(path)],
                              capture_output=True, text=True, env=env, timeout=30)

    result = run(local, "certfleet.yaml")
    if result.returncode == 0:
        report(True, title)
        return
    keys = problem_keys(result.stderr)
    if keys and set(keys) <= PENDING_KEYS:
        again = run(strip_pending(local), "certfleet-without-pending.yaml")
        if again.returncode == 0:
            report(False, title, f"refused ONLY for keys not implemented in this binary yet ({', '.join(keys)}); "
                                 f"accepted with them removed:\n{result.stderr.strip()}")
            return
        report(False, title, result.stderr.strip() + "\nwithout the pending keys:\n" + again.stderr.strip())
        return
    report(False, title, result.stderr.strip() or result.stdout.strip())


# --------------------------------------------------------------------------- main

def main() -> int:
    started = time.monotonic()
    if not Path(CERTFLEET_BIN).is_file():
        report(False, "certfleet binary", f"{CERTFLEET_BIN} is missing: cargo build --locked --bin certfleet "
                                          "(or point CERTFLEET_BIN at one)")
    binary = Path(CERTFLEET_BIN).is_file()

    lint_sets = [("defaults", None)] + [(f"examples/{p.name}", example(p.name)) for p in sorted(EXAMPLES.glob("*.yaml"))]
    for name, values in lint_sets:
        result = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
        bad = [m for m in result.get("messages", []) if m.get("severity", 0) >= 2] + [
            {"error": e} for e in result.get("errors", []) or []]
        infos = [f"info: {m['path']}: {m['error']}" for m in result.get("messages", []) if m.get("severity") == 1]
        report(not bad, f"helm lint --strict [{name}]",
               "\n".join([f"{m.get('path', '')}: {m['error']}" for m in bad] + infos))

    with helm.Chart.load(str(CHART)) as chart:
        report(chart.metadata.get("apiVersion") == "v2" and chart.metadata.get("appVersion") == cargo_version(),
               "Chart.yaml: apiVersion v2, appVersion = Cargo.toml version",
               f"apiVersion {chart.metadata.get('apiVersion')}, appVersion {chart.metadata.get('appVersion')}, "
               f"Cargo.toml {cargo_version()}")
        for name, values in value_sets():
            with tempfile.TemporaryDirectory(prefix="check-chart-") as tmp:
                work = Path(tmp)
                try:
                    docs = render(chart, values)
                except helm.HelmError as e:
                    report(False, f"render [{name}]", str(e))
                    continue
                kinds = sorted(d["kind"] for d in docs)
                report(True, f"render [{name}]", ", ".join(kinds))
                monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
                others = [d for d in docs if d["kind"] != "ServiceMonitor"]
                ok, detail = kubernetes_validate(others, work)
                report(ok, f"kubernetes-validate -k {KUBE_VERSION} --strict [{name}]", detail)
                for monitor in monitors:
                    problems = check_service_monitor(monitor, docs)
                    report(not problems, f"ServiceMonitor structure (CRD, no official schema: checked here) [{name}]",
                           "\n".join(problems))
                problems = invariants(name, values, docs)
                report(not problems, f"chart promises [{name}]", "\n".join(problems))
                if binary:
                    check_config(name, docs, values, work)

        for name, values, needle in MUST_FAIL:
            try:
                chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
                report(False, f"render refuses: {name}", "it rendered")
            except helm.HelmError as e:
                message = str(e)
                report(needle in message, f"render refuses: {name} (message names {needle!r})", message)

    elapsed = time.monotonic() - started
    print(f"\n{'FAILED' if failures else 'OK'}: {failures} failing check(s), {elapsed:.1f}s")
    return 1 if failures else 0


def cargo_version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), flags=re.M)
    return match.group(1) if match else ""


if __name__ == "__main__":
    sys.exit(main())
