"""The agent's side of the gateway's test: an MCP client written with the official Python
SDK (`mcp`), talking over stdio to the gateway command given after `--`, in one session.

    python client.py -- approval-gate --config F mcp … -- python upstream.py

It prints one JSON object a line for the test to read, and where a person must act in
between (approve with the `approval-gate` command), it prints `{"step": "waiting"}` and
reads one line from its standard input before it goes on. No sleeps: the test drives it.
"""

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters

MAIL = {"to": "bob@example.com", "subject": "Q3 numbers"}
BLAST = {"to": "everyone@example.com", "subject": "Q3 numbers"}


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def outcome(result):
    """What a tools/call gave, as the test reads it."""
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    return {
        "is_error": bool(result.is_error),
        "text": "\n".join(texts),
        "structured": result.structured_content,
    }


async def wait_for_the_test():
    say("waiting")
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"the test said {line!r}, not go")


async def main(command):
    # The gateway gets what the upstream needs (the outbox); the SDK passes only a
    # small default environment otherwise.
    env = {"APPROVAL_GATE_TEST_OUTBOX": os.environ["APPROVAL_GATE_TEST_OUTBOX"]}
    server = StdioServerParameters(command=command[0], args=command[1:], env=env)
    # How to connect: "legacy" (the initialize handshake) or a modern protocol version.
    mode = os.environ.get("APPROVAL_GATE_TEST_MCP_MODE", "auto")
    async with Client(server, mode=mode) as client:
        tools = await client.list_tools()
        say(
            "tools",
            names=sorted(t.name for t in tools.tools),
            protocol_version=client.protocol_version,
        )

        say("read", **outcome(await client.call_tool("notes.read", {"id": "n1"})))

        say("write", **outcome(await client.call_tool("email.send", MAIL)))
        await wait_for_the_test()  # a person approves meanwhile

        say("write_again", **outcome(await client.call_tool("email.send", MAIL)))
        say("write_once_more", **outcome(await client.call_tool("email.send", MAIL)))

        say("drop", **outcome(await client.call_tool("db.drop", {"table": "users"})))

        say("blast", **outcome(await client.call_tool("email.send", BLAST)))
        await wait_for_the_test()  # a person denies meanwhile, with feedback
        say("blast_again", **outcome(await client.call_tool("email.send", BLAST)))
    say("done")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "--" or len(args) < 2:
        raise SystemExit("usage: client.py -- GATEWAY-COMMAND ARGS…")
    asyncio.run(main(args[1:]))
