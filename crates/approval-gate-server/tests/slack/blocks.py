"""Checks Block Kit blocks with Slack's own SDK.

Reads JSON on stdin: a list of messages, each a list of blocks. Each block must parse
(`slack_sdk.models.blocks.Block.parse`) into a known block type and give back the same
JSON (`to_dict()`). Prints one JSON line: {"blocks": N, "types": [...]}.
"""

import json
import sys

from slack_sdk.models.blocks import Block


def main():
    messages = json.load(sys.stdin)
    count = 0
    types = set()
    for blocks in messages:
        for block in blocks:
            parsed = Block.parse(block)
            assert parsed is not None, block
            assert type(parsed) is not Block, f"unknown block type: {block}"
            parsed.validate_json()
            assert parsed.to_dict() == block, (parsed.to_dict(), block)
            count += 1
            types.add(block["type"])
    print(json.dumps({"blocks": count, "types": sorted(types)}))


if __name__ == "__main__":
    main()
