"""Scenario runner for the gateway end-to-end tests (official Python SDK, mcp 2.x).

Prints exactly ONE JSON line on stdout: the result the Rust test asserts on
(`{"ok": true, ...}`), or `{"ok": false, "error": ...}` with exit status 1.
Everything else (SDK logs, tracebacks) goes to stderr.

Usage:
    client.py --url http://127.0.0.1:A/mcp [--alt-url http://127.0.0.1:B/mcp]
              --scenario many-calls|sessions|big|progress|legacy-sse|modern|pause
              [--calls N] [--sessions K] [--size BYTES] [--steps N]
              [--header 'Name: value']... [--timeout SECONDS] [--ca-file PEM]

With `--alt-url`, successive HTTP requests alternate between the two URLs'
host:port (request 0 goes to --url, request 1 to --alt-url, ...), as a load
balancer spreading one client's requests over gateway replicas would.

`pause`: runs `--calls` whoami calls, prints the line `PAUSED` on stdout, then
waits (at most --pause-timeout seconds) for one line on stdin. An empty line
continues against the same URLs; a line `URL [ALT_URL]` retargets the
following requests. It then runs `--calls` more calls and prints the JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import traceback
from collections import Counter
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from backend import pattern

MAX_SSE_EVENT_SIZE = 64 * 1024 * 1024
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=120.0)


class Rotation:
    """The host:port targets requests are spread over, plus what was seen on the wire."""

    def __init__(self, urls: list[str]) -> None:
        self.targets: list[httpx2.URL] = [httpx2.URL(u) for u in urls]
        self.next_index = 0
        self.requests_by_target: Counter[str] = Counter()
        self.sent_session_ids: set[str] = set()
        self.received_session_ids: set[str] = set()
        self.statuses: Counter[int] = Counter()

    def retarget(self, urls: list[str]) -> None:
        self.targets = [httpx2.URL(u) for u in urls]
        self.next_index = 0

    def pick(self) -> httpx2.URL:
        target = self.targets[self.next_index % len(self.targets)]
        self.next_index += 1
        return target

    def summary(self) -> dict[str, Any]:
        return {
            "requests_by_target": dict(self.requests_by_target),
            "client_session_ids": sorted(self.sent_session_ids | self.received_session_ids),
            "statuses": {str(k): v for k, v in self.statuses.items()},
        }


class AlternatingTransport(httpx2.AsyncBaseTransport):
    """Sends each request to the next target's host:port, keeping path and query."""

    def __init__(self, rotation: Rotation) -> None:
        self.rotation = rotation
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = self.rotation.pick()
        request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        request.headers["host"] = f"{target.host}:{target.port}"
        key = f"{target.host}:{target.port}"
        self.rotation.requests_by_target[key] += 1
        sent = request.headers.get("mcp-session-id") or request.url.params.get("session_id")
        if sent:
            self.rotation.sent_session_ids.add(sent)
        response = await self.inner.handle_async_request(request)
        self.rotation.statuses[response.status_code] += 1
        received = response.headers.get("mcp-session-id")
        if received:
            self.rotation.received_session_ids.add(received)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def parse_headers(raw: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep:
            raise SystemExit(f"--header must be 'Name: value', got {item!r}")
        headers[name.strip()] = value.strip()
    return headers


def http_client(rotation: Rotation, headers: dict[str, str], timeout: httpx2.Timeout = HTTP_TIMEOUT) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=AlternatingTransport(rotation), headers=headers, timeout=timeout)


def streamable_client(args: argparse.Namespace, rotation: Rotation, mode: str = "legacy") -> Client:
    transport = streamable_http_client(
        args.url,
        http_client=http_client(rotation, parse_headers(args.header)),
        max_sse_event_size=MAX_SSE_EVENT_SIZE,
    )
    return Client(transport, mode=mode, cache=None, read_timeout_seconds=args.timeout)


def sse_transport(args: argparse.Namespace, rotation: Rotation):  # noqa: ANN201 - SDK context manager
    sse_url = args.url

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        merged = {**(headers or {}), **parse_headers(args.header)}
        return http_client(rotation, merged, timeout or HTTP_TIMEOUT)

    return sse_client(sse_url, httpx_client_factory=factory, timeout=30.0, sse_read_timeout=120.0)


def tool_text(result: Any) -> str:
    if result.is_error:
        raise RuntimeError(f"tool returned an error: {result.content!r}")
    texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
    if len(texts) != 1:
        raise RuntimeError(f"expected one text block, got {result.content!r}")
    return texts[0]


async def whoami_calls(client: Client, count: int) -> list[dict[str, Any]]:
    calls = []
    for _ in range(count):
        info = json.loads(tool_text(await client.call_tool("whoami", {})))
        calls.append(info)
    return calls


async def list_tool_names(client: Client) -> list[str]:
    return sorted(tool.name for tool in (await client.list_tools()).tools)


async def scenario_many_calls(args: argparse.Namespace) -> dict[str, Any]:
    rotation = Rotation(urls(args))
    async with streamable_client(args, rotation) as client:
        tools = await list_tool_names(client)
        calls = await whoami_calls(client, args.calls)
        version = client.protocol_version
    return {"tools": tools, "calls": calls, "protocol_version": version, **rotation.summary()}


async def scenario_sessions(args: argparse.Namespace) -> dict[str, Any]:
    results: list[dict[str, Any] | None] = [None] * args.sessions

    async def one(index: int) -> None:
        rotation = Rotation(urls(args))
        async with streamable_client(args, rotation) as client:
            calls = await whoami_calls(client, args.calls)
        results[index] = {"calls": calls, **rotation.summary()}

    async with anyio.create_task_group() as tg:
        for index in range(args.sessions):
            tg.start_soon(one, index)
    return {"sessions": results}


async def scenario_big(args: argparse.Namespace) -> dict[str, Any]:
    rotation = Rotation(urls(args))
    async with streamable_client(args, rotation) as client:
        text = tool_text(await client.call_tool("big", {"size": args.size}))
    data = text.encode()
    return {
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "expected_length": args.size,
        "expected_sha256": hashlib.sha256(pattern(args.size).encode()).hexdigest(),
        **rotation.summary(),
    }


async def scenario_progress(args: argparse.Namespace) -> dict[str, Any]:
    rotation = Rotation(urls(args))
    events: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append(f"progress:{progress:g}/{total:g}" if total is not None else f"progress:{progress:g}")

    async with streamable_client(args, rotation) as client:
        result = tool_text(
            await client.call_tool("progress", {"steps": args.steps}, progress_callback=on_progress)
        )
        events.append("result")
    return {"events": events, "result": result, **rotation.summary()}


async def scenario_legacy_sse(args: argparse.Namespace) -> dict[str, Any]:
    rotation = Rotation(urls(args))
    async with Client(sse_transport(args, rotation), mode="legacy", cache=None, read_timeout_seconds=args.timeout) as client:
        tools = await list_tool_names(client)
        calls = await whoami_calls(client, args.calls)
        big = tool_text(await client.call_tool("big", {"size": args.size})) if args.size else ""
        version = client.protocol_version
    summary = rotation.summary()
    return {
        "tools": tools,
        "calls": calls,
        "protocol_version": version,
        "big_sha256": hashlib.sha256(big.encode()).hexdigest(),
        "big_expected_sha256": hashlib.sha256(pattern(args.size).encode()).hexdigest(),
        **summary,
    }


async def scenario_modern(args: argparse.Namespace) -> dict[str, Any]:
    rotation = Rotation(urls(args))
    async with streamable_client(args, rotation, mode="2026-07-28") as client:
        tools = await list_tool_names(client)
        calls = await whoami_calls(client, args.calls)
        version = client.protocol_version
    return {"tools": tools, "calls": calls, "protocol_version": version, **rotation.summary()}


async def read_stdin_line(limit_seconds: float) -> str:
    with anyio.fail_after(limit_seconds):
        line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    if line == "":
        raise RuntimeError("stdin closed while paused")
    return line.strip()


async def scenario_pause(args: argparse.Namespace) -> dict[str, Any]:
    rotation = Rotation(urls(args))
    async with streamable_client(args, rotation) as client:
        before = await whoami_calls(client, args.calls)
        print("PAUSED", flush=True)
        line = await read_stdin_line(args.pause_timeout)
        if line:
            rotation.retarget(line.split())
        after = await whoami_calls(client, args.calls)
    return {"before": before, "after": after, **rotation.summary()}


SCENARIOS = {
    "many-calls": scenario_many_calls,
    "sessions": scenario_sessions,
    "big": scenario_big,
    "progress": scenario_progress,
    "legacy-sse": scenario_legacy_sse,
    "modern": scenario_modern,
    "pause": scenario_pause,
}


def urls(args: argparse.Namespace) -> list[str]:
    return [args.url] + ([args.alt_url] if args.alt_url else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--alt-url")
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=60.0, help="overall limit for the scenario, seconds")
    parser.add_argument("--pause-timeout", type=float, default=60.0)
    parser.add_argument("--ca-file", help="trust this CA certificate (PEM) for https:// URLs")
    args = parser.parse_args()
    if args.ca_file:
        # httpcore2 reads SSL_CERT_FILE when each transport builds its TLS context.
        os.environ["SSL_CERT_FILE"] = args.ca_file

    started = time.monotonic()

    async def run() -> dict[str, Any]:
        with anyio.fail_after(args.timeout + (args.pause_timeout if args.scenario == "pause" else 0)):
            return await SCENARIOS[args.scenario](args)

    try:
        result = anyio.run(run)
    except BaseException as exc:  # report every failure (including ExceptionGroup) as the JSON line
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"ok": False, "scenario": args.scenario, "error": describe(exc)}), flush=True)
        return 1
    result = {"ok": True, "scenario": args.scenario, "elapsed_s": round(time.monotonic() - started, 3), **result}
    print(json.dumps(result), flush=True)
    return 0


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
