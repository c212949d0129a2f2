"""Signs Slack requests with Slack's own SDK, as Slack would sign them.

Usage: sign.py SIGNING_SECRET. Reads JSON lines {"timestamp": "...", "body": "..."} on
stdin; prints one signature (`v0=...`) a line, in order.
"""

import json
import sys

from slack_sdk.signature import SignatureVerifier


def main():
    verifier = SignatureVerifier(sys.argv[1])
    for line in sys.stdin:
        if not line.strip():
            continue
        given = json.loads(line)
        print(verifier.generate_signature(timestamp=str(given["timestamp"]), body=given["body"]))


if __name__ == "__main__":
    main()
