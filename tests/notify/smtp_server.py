"""A real SMTP server for certfleet's notification tests: aiosmtpd's Controller on 127.0.0.1.

Each message received is appended to --out as one JSON object on a line of its own, written
before the server answers 250 to the message's data: mail_from, rcpt_tos, subject, body (the
text/plain part with its transfer encoding and charset undone, lines ending in LF), headers
(names lowercased; a name sent more than once keeps every value, one per line), and whether the
session that sent it was under TLS and authenticated.

Modes:
  plain                        no TLS (the default)
  --tls-cert F --tls-key K     STARTTLS offered (RFC 3207) and required before MAIL
  ... --implicit-tls           TLS from the first byte instead (RFC 8314), same certificate
  --user U --password P        AUTH PLAIN or LOGIN (RFC 4954) required before MAIL; with TLS,
                               offered and accepted only once the session is under TLS

Prints "ready <port>" (flushed) once it listens, then runs until SIGTERM or SIGINT.
tests/it/common/smtp.rs starts it with PYTHONPATH=target/test-tools/python, where
scripts/install-test-deps.sh installs tests/notify/requirements.txt.
"""

import argparse
import email
import email.policy
import json
import logging
import signal
import socket
import ssl
import sys
import warnings

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError as missing:
    sys.exit(f"aiosmtpd is missing ({missing}): run scripts/install-test-deps.sh")

# With --port 0, how many free ports are tried: another process may take the one picked
# before the server binds it.
START_ATTEMPTS = 3
# How long Controller.start waits for the server thread (a loaded 2-core machine is slow).
READY_TIMEOUT_SECS = 10.0


def main():
    args = parse_args()
    tls = server_tls_context(args) if args.tls_cert else None
    # The controller's thread inherits this mask: the signals reach only sigwait below.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    controller = start(args, tls)
    print(f"ready {controller.port}", flush=True)
    signal.sigwait(stop_signals)
    controller.stop()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--out", required=True, help="JSON lines file, one line per message")
    parser.add_argument("--tls-cert", help="PEM certificate chain: offer STARTTLS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    parser.add_argument("--user", help="require AUTH with this user name")
    parser.add_argument("--password", help="the password of --user")
    args = parser.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.implicit_tls and args.tls_cert is None:
        parser.error("--implicit-tls needs --tls-cert and --tls-key")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    return args


def server_tls_context(args):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def start(args, tls):
    """Starts a Controller on --port, or on a free port with a few tries."""
    options = {"server_hostname": "localhost", "ready_timeout": READY_TIMEOUT_SECS}
    if tls is not None and args.implicit_tls:
        options["ssl_context"] = tls
    elif tls is not None:
        options["tls_context"] = tls
        options["require_starttls"] = True
    if args.user is not None:
        options["authenticator"] = Authenticator(args.user, args.password)
        options["auth_required"] = True
        # Under implicit TLS every session is encrypted from the first byte: only STARTTLS
        # has a plain-text phase in which AUTH must be refused. (aiosmtpd counts only
        # STARTTLS as TLS, and would refuse AUTH under implicit TLS; its warnings about
        # AUTH without TLS are wrong here and silenced.)
        implicit = tls is not None and args.implicit_tls
        options["auth_require_tls"] = tls is not None and not implicit
        if implicit:
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            logging.getLogger("mail.log").addFilter(
                lambda record: "auth_require_tls == False" not in record.getMessage()
            )
    attempts = 1 if args.port else START_ATTEMPTS
    for attempt in range(1, attempts + 1):
        port = args.port or free_port()
        controller = Controller(Recorder(args.out), hostname="127.0.0.1", port=port, **options)
        try:
            controller.start()
            return controller
        except OSError as error:
            if attempt == attempts:
                raise
            print(f"port {port}: {error}; trying another", file=sys.stderr, flush=True)
    raise AssertionError("the last attempt returns or raises")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Authenticator:
    """aiosmtpd's authenticator callback: one user name and password, for PLAIN and LOGIN."""

    def __init__(self, user, password):
        self.expected = LoginPassword(user.encode(), password.encode())

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if auth_data == self.expected:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd answers 535 itself (with True it would send nothing).
        return AuthResult(success=False, handled=False)


class Recorder:
    """aiosmtpd's handler: records each message in the out file, then accepts it."""

    def __init__(self, out_path):
        self.out_path = out_path

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        headers = {}
        for name, value in message.items():
            name = name.lower()
            headers[name] = f"{headers[name]}\n{value}" if name in headers else str(value)
        plain = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(message.get("subject", "")),
            # Lines end in CRLF on the wire (RFC 5321); in the record, as in the text sent, in LF.
            "body": plain.get_content().replace("\r\n", "\n") if plain is not None else "",
            "headers": headers,
            # The transport in use now: the TLS one after STARTTLS, or from the start.
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
        }
        # The newline is written last: a reader that takes whole lines never takes half a record.
        with open(self.out_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return "250 OK"


if __name__ == "__main__":
    main()
