"""A FastMCP server with the seed's tools, for the gateway's interop test
(tests/interop/fastmcp/driver.py): a server nobody here wrote the framework
of, which knows nothing of API keys, tokens or scopes. The gateway
(`mcp-auth-gateway`) in front of it decides who may call what, with the
rules in policy.toml beside this file.

    python server.py [--port PORT] [--stateless] [--header-log FILE]

It listens on 127.0.0.1, on PORT (default: one the system picks), serves MCP over
Streamable HTTP at /mcp, and prints one JSON line once listening:

    {"url": "http://127.0.0.1:PORT/mcp"}

With --header-log FILE, every HTTP request that reaches it (any path, any
method) is appended to FILE as one JSON line, {"method", "path",
"headers": [[name, value], ...]}, before FastMCP sees it: the driver reads
it to prove that a caller's credentials never reach the upstream. The tool
`echo_headers` returns the headers of the request that called it, as the
Python code of a tool sees them.

The tools keep their data in memory and trust their caller: whoever
reaches this server may call every tool. That is the point: the policy is
the gateway's.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.dependencies import get_http_request

USERS: dict[str, dict[str, Any]] = {
    "user_001": {"name": "Alice", "email": "alice@example.com", "role": "user"},
    "user_002": {"name": "Bob", "email": "bob@example.com", "role": "user"},
}

mcp = FastMCP("fastmcp-seed")


def known(user_id: str) -> dict[str, Any]:
    if user_id not in USERS:
        raise ValueError(f"no user {user_id!r}")
    return USERS[user_id]


@mcp.tool
def get_user_data(user_id: str) -> dict[str, Any]:
    """Get a user's data (gateway rule: bearer token with read:data)."""
    return {"user_id": user_id, **known(user_id)}


@mcp.tool
def update_user_data(user_id: str, email: str) -> dict[str, Any]:
    """Update a user's email (gateway rule: bearer token with write:data)."""
    known(user_id)["email"] = email
    return {"status": "success", "user_id": user_id}


@mcp.tool
def create_admin_user(name: str, email: str) -> dict[str, Any]:
    """Create an admin user (gateway rule: API key)."""
    user_id = f"user_{len(USERS) + 1:03d}"
    USERS[user_id] = {"name": name, "email": email, "role": "admin"}
    return {"status": "success", "user_id": user_id}


@mcp.tool
def delete_user(user_id: str) -> dict[str, Any]:
    """Delete a user (gateway rule: API key, or bearer token with admin:write)."""
    known(user_id)
    del USERS[user_id]
    return {"status": "deleted", "user_id": user_id}


@mcp.tool
def list_all_users() -> dict[str, Any]:
    """List all users (gateway rule: API key)."""
    return {"users": sorted(USERS)}


@mcp.tool
def get_user_by_id(user_id: str) -> dict[str, Any]:
    """Get a user by id (gateway rule: API key)."""
    return {"user_id": user_id, **known(user_id)}


@mcp.tool
def protected_operation(param: str) -> dict[str, Any]:
    """An operation any authenticated caller may run."""
    return {"operation": "protected_operation", "param": param}


@mcp.tool
def experimental_operation(param: str) -> dict[str, Any]:
    """No gateway rule names it: nobody may call it and no list shows it."""
    return {"operation": "experimental_operation", "param": param}


@mcp.tool
def echo_headers() -> dict[str, Any]:
    """The HTTP headers of the request that called this tool, as the
    upstream's Python code receives them (gateway rule: authenticated)."""
    request = get_http_request()
    return {"headers": [[k, v] for k, v in request.headers.items()]}


@mcp.resource("admin://system/stats")
def system_stats() -> dict[str, Any]:
    """Counts of users (gateway rule: API key)."""
    return {"total_users": len(USERS)}


@mcp.resource("user://{user_id}/private")
def private_data(user_id: str) -> dict[str, Any]:
    """A user's private record (gateway rule: bearer token with read:data)."""
    return {"user_id": user_id, "email": known(user_id)["email"]}


@mcp.prompt
def summarize_user(user_id: str) -> str:
    """A prompt about a user (gateway rule: authenticated)."""
    return f"Summarize what you know about user {user_id}."


class HeaderLog:
    """ASGI middleware: appends each HTTP request's method, path and headers
    to a file, one JSON line each, before the app sees the request."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            entry = {
                "method": scope["method"],
                "path": scope["path"],
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            }
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="listen on 127.0.0.1:PORT (default: a free port)")
    parser.add_argument("--stateless", action="store_true", help="no sessions, plain JSON responses")
    parser.add_argument("--header-log", help="append each request's headers to this file")
    args = parser.parse_args()

    # Bound here, so the port is known (and printed) before serving.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]

    app = mcp.http_app(
        path="/mcp",
        stateless_http=args.stateless,
        json_response=args.stateless,
    )
    if args.header_log:
        app.add_middleware(HeaderLog, path=args.header_log)

    import uvicorn

    print(json.dumps({"url": f"http://127.0.0.1:{port}/mcp"}), flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
