"""An upstream MCP server that exits in the middle of a session: its one tool,
`notes.read`, ends the process. For the gateway's test of an upstream that goes away.
"""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("exiting-upstream")


@server.tool(name="notes.read", description="Exit the process.")
def notes_read(id: str) -> str:
    os._exit(3)


if __name__ == "__main__":
    server.run()
