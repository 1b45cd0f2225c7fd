"""Checks webhook deliveries with the published Standard Webhooks library (PyPI standardwebhooks).

The independent check of certfleet's webhook signatures: none of certfleet's code is involved.
Reads from stdin a JSON list of {"secret": "whsec_...", "headers": {name: value}, "body": "..."}
(the body exactly as it was received) and writes to stdout a JSON list, in the same order, of
{"ok": true, "error": null} or {"ok": false, "error": "<why>"}: `Webhook(secret).verify(body,
headers)` checks the webhook-id, webhook-timestamp (within the library's tolerance of now) and
webhook-signature headers, and that the body is JSON.

tests/it/common/webhook.rs runs it with PYTHONPATH=target/test-tools/python, where
scripts/install-test-deps.sh installs tests/notify/requirements.txt.
"""

import json
import sys

try:
    from standardwebhooks.webhooks import Webhook
except ImportError as missing:
    sys.exit(f"standardwebhooks is missing ({missing}): run scripts/install-test-deps.sh")


def main():
    deliveries = json.load(sys.stdin)
    json.dump([check(delivery) for delivery in deliveries], sys.stdout)
    sys.stdout.write("\n")


def check(delivery):
    try:
        Webhook(delivery["secret"]).verify(delivery["body"], delivery["headers"])
    # Whatever the library refuses with (a bad signature, a stale timestamp, a malformed
    # secret, a body that is not JSON) is a failed verification, reported with its reason.
    except Exception as error:  # noqa: BLE001
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True, "error": None}


if __name__ == "__main__":
    main()
