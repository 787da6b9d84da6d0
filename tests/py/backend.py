"""An MCP server replica for the gateway end-to-end tests (official Python SDK, mcp 2.x).

Usage:
    backend.py --port PORT --name NAME [--transport streamable-http|sse]
               [--json-response] [--stateless]

Binds 127.0.0.1 only. Prints `READY <name> <port>` on stdout once the port is
bound, so the harness may wait for either that line or the port.

Tools:
    whoami()        -> JSON text {"server", "session", "authorization", "x_request_id", "protocol_version"}
    echo(text)      -> text
    big(size)       -> `size` bytes of a deterministic pattern (see `pattern`)
    progress(steps) -> reports progress `steps` times, then returns "done <steps>"
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

PATTERN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def pattern(size: int) -> str:
    """Deterministic ASCII text of exactly `size` bytes (the client recomputes it)."""
    reps = size // len(PATTERN_ALPHABET) + 1
    return (PATTERN_ALPHABET * reps)[:size]


def _session_id(ctx: Context[Any, Any], transport: str) -> str | None:
    """The session id as this server knows it (never the one a proxy hands its clients).

    Streamable HTTP: the id the SDK's session manager minted for this
    connection. Legacy SSE: the `session_id` query parameter of the POST, which
    the SDK's SseServerTransport looked up in its own session table.
    """
    if transport == "sse":
        request = ctx.request_context.request
        params = getattr(request, "query_params", None)
        return params.get("session_id") if params is not None else None
    connection = getattr(ctx.request_context.session, "_connection", None)
    return getattr(connection, "session_id", None)


def build_server(name: str, transport: str) -> MCPServer:
    """The MCPServer with the four test tools."""
    server = MCPServer(name=name)

    @server.custom_route("/health", methods=["GET"])
    async def health(_request: Request) -> Response:
        """Liveness probe for a proxy's health checks."""
        return PlainTextResponse("ok")

    @server.tool()
    async def whoami(ctx: Context) -> str:
        """Which replica and which backend session served this call."""
        headers = ctx.headers or {}
        return json.dumps(
            {
                "server": name,
                "session": _session_id(ctx, transport),
                "authorization": headers.get("authorization"),
                "x_request_id": headers.get("x-request-id"),
                "protocol_version": ctx.protocol_version,
            }
        )

    @server.tool()
    async def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    @server.tool()
    async def big(size: int) -> str:
        """Return `size` bytes of a deterministic pattern."""
        if size < 0 or size > 16 * 1024 * 1024:
            raise ValueError("size must be within 0..16 MiB")
        return pattern(size)

    @server.tool()
    async def progress(steps: int, ctx: Context) -> str:
        """Report progress `steps` times, then return."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
            await anyio.sleep(0.02)
        return f"done {steps}"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--transport", choices=["streamable-http", "sse"], default="streamable-http")
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args()

    host = "127.0.0.1"
    # The gateway forwards `Host: 127.0.0.1:<this port>`; allow loopback hosts on any
    # port and loopback origins, keeping the SDK's DNS-rebinding protection on.
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    server = build_server(args.name, args.transport)
    if args.transport == "sse":
        app = server.sse_app(sse_path="/sse", message_path="/messages/", transport_security=security, host=host)
    else:
        app = server.streamable_http_app(
            streamable_http_path="/mcp",
            json_response=args.json_response,
            stateless_http=args.stateless,
            transport_security=security,
            host=host,
        )

    config = uvicorn.Config(app, host=host, port=args.port, log_level="warning", lifespan="on")
    uv_server = uvicorn.Server(config)

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(uv_server.serve)
            for _ in range(400):
                if uv_server.started:
                    print(f"READY {args.name} {args.port}", flush=True)
                    break
                await anyio.sleep(0.025)

    anyio.run(serve)
    sys.exit(0)


if __name__ == "__main__":
    main()
