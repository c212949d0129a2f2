"""In-client approval through the gateway: an MCP client written with the official Python
SDK that declares elicitation and answers the gateway's questions as a person would.

    python in_client.py -- approval-gate --config F mcp --approve-in-client notes … -- python upstream.py

It writes three notes; the person approves the first, denies the second with feedback,
and declines the third. It prints one JSON object a line: each question it was asked
and each call's outcome. The connect mode ("legacy" for the initialize handshake, or a
protocol version such as "2026-07-28") comes from APPROVAL_GATE_TEST_MCP_MODE.
"""

import asyncio
import os
import sys

from mcp import Client, StdioServerParameters
from mcp.types import ElicitResult

from client import outcome, say

# What the person answers, question by question.
ANSWERS = [
    ElicitResult(action="accept", content={"decision": "approve"}),
    ElicitResult(action="accept", content={"decision": "deny", "feedback": "not in the shared notebook"}),
    ElicitResult(action="decline"),
]


async def main(command):
    answers = iter(ANSWERS)

    async def person(context, params):
        say("asked", message=params.message, schema=params.requested_schema)
        return next(answers)

    env = {"APPROVAL_GATE_TEST_OUTBOX": os.environ["APPROVAL_GATE_TEST_OUTBOX"]}
    server = StdioServerParameters(command=command[0], args=command[1:], env=env)
    mode = os.environ.get("APPROVAL_GATE_TEST_MCP_MODE", "auto")
    async with Client(server, mode=mode, elicitation_callback=person) as client:
        await client.list_tools()
        say("connected", protocol_version=client.protocol_version)
        for n in ("n1", "n2", "n3"):
            result = await client.call_tool("notes.write", {"id": n, "text": "call mum"})
            say(n, **outcome(result))
    say("done")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "--" or len(args) < 2:
        raise SystemExit("usage: in_client.py -- GATEWAY-COMMAND ARGS…")
    asyncio.run(main(args[1:]))
