"""The test's toy upstream (`upstream.py`) served over streamable HTTP instead of stdio.

It listens on 127.0.0.1 at a port the system picks, prints `listening PORT` once the
socket takes connections (before uvicorn runs, so a client may connect at once), and
serves MCP at `/mcp` until it is killed.
"""

import asyncio
import socket

import uvicorn

from upstream import server


async def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(f"listening {sock.getsockname()[1]}", flush=True)
    app = server.streamable_http_app(streamable_http_path="/mcp")
    config = uvicorn.Config(app, log_level="warning")
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main())
