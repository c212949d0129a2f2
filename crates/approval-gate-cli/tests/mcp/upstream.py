"""A toy upstream MCP server for the gateway's test, written with the official Python SDK
(`MCPServer`, FastMCP's successor in `mcp` 2): a read tool, two write tools that append
a line to the file named by APPROVAL_GATE_TEST_OUTBOX, and a tool the policy denies.

Speaks MCP on stdin and stdout: `python upstream.py`.
"""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("toy-upstream", instructions="A notebook and an outbox.")


@server.tool(name="notes.read", description="Read a note.")
def notes_read(id: str) -> str:
    return f"note {id}: buy milk"


@server.tool(name="email.send", description="Send an email.")
def email_send(to: str, subject: str) -> str:
    with open(os.environ["APPROVAL_GATE_TEST_OUTBOX"], "a", encoding="utf-8") as outbox:
        outbox.write(f"{to}\t{subject}\n")
    return f"sent to {to}"


@server.tool(name="notes.write", description="Write a note.")
def notes_write(id: str, text: str) -> str:
    with open(os.environ["APPROVAL_GATE_TEST_OUTBOX"], "a", encoding="utf-8") as outbox:
        outbox.write(f"note {id}\t{text}\n")
    return f"noted {id}"


@server.tool(name="db.drop", description="Drop a table.")
def db_drop(table: str) -> str:
    raise RuntimeError("the gate should never let this run")


if __name__ == "__main__":
    server.run()
