"""An upstream MCP server that dies in the middle of a call, once: the first call of
`notes.read` makes the file named by APPROVAL_GATE_TEST_MARKER and ends the process
without answering; later calls (in the process the gateway starts again) answer.
For the gateway's test of an upstream that goes away mid-call.
"""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("exiting-upstream")


@server.tool(name="notes.read", description="Read a note; the first call kills the server.")
def notes_read(id: str) -> str:
    marker = os.environ["APPROVAL_GATE_TEST_MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return f"note {id}: buy milk"


if __name__ == "__main__":
    server.run()
