"""Verifies webhooks with the official Standard Webhooks library, as a receiver would.

Reads JSON on stdin: {"secret": "whsec_...", "deliveries": [{"id", "timestamp",
"signature", "body"}], "old": {...}}. Every delivery must verify; the same delivery with
its body changed, and the `old` one (signed correctly, an hour ago), must be refused.
Prints one JSON line: {"verified": N, "tampered_refused": N, "old_refused": true}.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def headers(d):
    return {
        "webhook-id": d["id"],
        "webhook-timestamp": str(d["timestamp"]),
        "webhook-signature": d["signature"],
    }


def refused(hook, body, h):
    try:
        hook.verify(body, h)
    except WebhookVerificationError:
        return True
    return False


def main():
    given = json.load(sys.stdin)
    hook = Webhook(given["secret"])
    verified = 0
    tampered_refused = 0
    for d in given["deliveries"]:
        payload = hook.verify(d["body"], headers(d))
        assert isinstance(payload, dict) and "type" in payload, payload
        verified += 1
        tampered = d["body"].replace('"type":"', '"type":"x', 1)
        assert tampered != d["body"]
        if refused(hook, tampered, headers(d)):
            tampered_refused += 1
    old = given["old"]
    print(json.dumps({
        "verified": verified,
        "tampered_refused": tampered_refused,
        "old_refused": refused(hook, old["body"], headers(old)),
    }))


if __name__ == "__main__":
    main()
