"""The gateway in front of a FastMCP server, end to end over loopback:

    GATEWAY_BIN=target/debug/mcp-auth-gateway python driver.py

It starts the FastMCP server of server.py beside this file (FastMCP 4, the
official MCP Python SDK under it; nothing in it checks a credential), the
interop tests' authorization server (oauth2-mock-server,
tests/interop/authserver/server.mjs) and the gateway binary in front of
FastMCP (UPSTREAM_URL = the FastMCP server, POLICY_FILE = policy.toml
beside this file, an API key, a JWT_SECRET it signs test tokens with, and
OAUTH_ISSUER = the authorization server, its keys found by discovery),
twice: once with FastMCP's default transport (sessions, each answer an SSE
stream) and once stateless (`--stateless`: plain JSON answers). Against
each it runs these checks, as a caller would, through the gateway's public
URL only:

- anonymous: no credential is refused with 401, `WWW-Authenticate: Bearer
  resource_metadata=…`, and the metadata names the gateway's public URL;
  a wrong API key and a token signed with another key are refused too;
- api_key / bearer_read / bearer_admin: the policy decides per tool and
  credential (an API key may call create_admin_user and list_all_users,
  not get_user_data; a bearer token with read:data the opposite; with
  admin:write, delete_user), refused calls get 403 with a JSON-RPC error
  carrying the request's id and have no effect on the Python side (the
  data they would change is read back), and tools/list, resources/list,
  resources/templates/list and prompts/list are filtered to what each
  caller may call (experimental_operation, which no rule names, is shown
  to nobody);
- sdk_bearer / fastmcp_client / ts_sdk_bearer: the official MCP Python
  SDK's client, FastMCP's own client and the official TypeScript SDK's
  client (ts_client.mjs, the SDK scripts/test installs in
  tests/interop/node), each with a bearer token, run a session through the
  gateway (initialize, list, call);
- oauth_metadata: the 401's `resource_metadata` is the gateway's RFC 9728
  metadata, which names the authorization server and the policy's scopes;
  the server's metadata offers PKCE S256;
- sdk_oauth / ts_sdk_oauth: with no credential, the Python SDK's and the
  TypeScript SDK's own OAuth clients (the "browser" automated as in
  tests/interop.rs: tests/interop/python/client.py's Browser,
  tests/interop/node/automated_provider.mjs) run their flow from the
  gateway's 401: the gateway's metadata, the server's, authorization code
  + PKCE for a pre-registered client with the gateway's public URL as the
  RFC 8707 resource, a token, then a session whose tools/list matches the
  token's scopes and whose tool calls reach Python;
- sdk_step_up / ts_sdk_step_up: a read:data token (johndoe's, the user the
  code grant names) calls update_user_data: 403 insufficient_scope, the
  SDK authorizes again with write:data, the call is repeated and the
  change is read back from Python;
- authserver_requests: every authorization and code exchange the
  authorization server saw named the gateway's public URL and used PKCE,
  one per OAuth flow at least;
- introspection: a second gateway in front of the same FastMCP server,
  with RFC 7662 introspection at the authorization server as its only
  bearer-token check (OAUTH_INTROSPECTION_URL, OAUTH_CLIENT_ID,
  OAUTH_CLIENT_SECRET): the Python and TypeScript SDKs' clients with a
  client-credentials token get the read:data tools; a token revoked
  before its first use and one never issued get 401;
- no_passthrough: the Python tools never see the caller's credentials: the
  tool `echo_headers` reports no Authorization, X-API-Key, DPoP or Cookie
  header, and no request the FastMCP server received (its
  header log, every request of the run) carries any of the run's keys,
  tokens (the OAuth flows' included) or cookie values;
- session_bound (sessions only): a session opened by one caller is refused
  to another caller (the gateway seals Mcp-Session-Id to its caller);
- upstream_down: with the FastMCP server stopped, a call answers 502 or
  504 with a JSON-RPC error for the request's id, without hanging.

Each check prints one JSON line {"mode", "check", "result": "pass"|"fail",
"details"}; then a table. Exit status 0 when every check passes, 1 when
one fails, 2 when the gateway, FastMCP or the authorization server cannot
start (GATEWAY_BIN unset or not an executable; FastMCP not installed:
scripts/test installs it into target/interop-venv from
tests/interop/python/requirements.txt; oauth2-mock-server or the
TypeScript SDK not installed: scripts/test runs npm ci in
tests/interop/authserver and tests/interop/node).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PROTOCOL = "2025-11-25"
# Every tool of server.py, and who may call it (policy.toml).
ALL_TOOLS = {
    "get_user_data", "update_user_data", "create_admin_user", "delete_user", "list_all_users",
    "get_user_by_id", "protected_operation", "experimental_operation", "echo_headers",
}
API_KEY_TOOLS = {"create_admin_user", "delete_user", "list_all_users", "get_user_by_id", "protected_operation", "echo_headers"}
READ_DATA_TOOLS = {"get_user_data", "protected_operation", "echo_headers"}
ADMIN_WRITE_TOOLS = {"delete_user", "protected_operation", "echo_headers"}
# What a bearer token may call besides the tools any caller may (policy.toml).
AUTHENTICATED_TOOLS = {"protected_operation", "echo_headers"}
TOOLS_BY_SCOPE = {"read:data": {"get_user_data"}, "write:data": {"update_user_data"}, "admin:write": {"delete_user"}}
CREDENTIAL_HEADERS = {"authorization", "x-api-key", "dpop", "cookie"}
# Bounds every wait on a child process.
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0

try:
    import httpx2
    import jwt
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import OAuthClientMetadata, OAuthToken

    # The automated OAuth pieces of the example's Python interop client
    # (MemoryStorage, Browser, Recorder, REDIRECT_URL, CLIENT_ID): one
    # implementation for both tests.
    _spec = importlib.util.spec_from_file_location("interop_python_client", ROOT / "tests" / "interop" / "python" / "client.py")
    interop = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(interop)
except ImportError as e:  # pragma: no cover - reported, not a test result
    print(f"driver.py: the MCP Python SDK is not installed ({e}); scripts/test installs it into target/interop-venv", file=sys.stderr)
    sys.exit(2)


class Failed(Exception):
    """A check's expectation that did not hold."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


# ───────────────────────────── processes ─────────────────────────────


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"driver.py: {what} exited with {proc.returncode} before listening:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"driver.py: {what} is not listening on port {port} after {START_TIMEOUT:.0f} s:\n{log.read_text()}")


class Fastmcp:
    """server.py in a child process; its URL is the JSON line it prints."""

    def __init__(self, tmp: Path, stateless: bool) -> None:
        self.header_log = tmp / "headers.jsonl"
        self.log = tmp / "fastmcp.log"
        args = [sys.executable, str(HERE / "server.py"), "--header-log", str(self.header_log)]
        if stateless:
            args.append("--stateless")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True)
        line = self.proc.stdout.readline()
        try:
            self.url = json.loads(line)["url"]
        except (ValueError, KeyError):
            self.stop()
            raise SystemExit(f"driver.py: the FastMCP server did not start:\n{line}{self.log.read_text()}")

    def requests(self) -> list[dict]:
        if not self.header_log.exists():
            return []
        return [json.loads(line) for line in self.header_log.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class AuthServer:
    """The interop tests' authorization server (oauth2-mock-server,
    tests/interop/authserver/server.mjs) in a child process: RS256 JWT
    access tokens whose `aud` is the RFC 8707 resource a client names,
    authorization code + PKCE for any pre-registered public client, and
    GET /interop/requests, what clients sent it. It exits when its stdin
    closes."""

    def __init__(self, tmp: Path, resource: str) -> None:
        directory = ROOT / "tests" / "interop" / "authserver"
        self.log = tmp / "authserver.log"
        # The client allowed to call /introspect: the gateway, in the
        # introspection check.
        self.client_id = "mcp-auth-gateway"
        self.client_secret = secrets.token_hex(20)
        self.proc = subprocess.Popen(
            ["node", "server.mjs"],
            cwd=directory,
            env={**os.environ, "RESOURCE": resource, "CLIENT_ID": self.client_id, "CLIENT_SECRET": self.client_secret},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
        )
        line = self.proc.stdout.readline()
        try:
            self.issuer = json.loads(line)["issuer"]
        except (ValueError, KeyError):
            self.stop()
            raise SystemExit(f"driver.py: the authorization server did not start:\n{line}{self.log.read_text()}")

    def requests(self) -> list[dict]:
        return httpx2.get(f"{self.issuer}/interop/requests", timeout=REQUEST_TIMEOUT).json()

    def client_credentials(self, scope: str, resource: str) -> str:
        response = httpx2.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "client_id": "interop-client", "scope": scope, "resource": resource},
            timeout=REQUEST_TIMEOUT,
        )
        if response.status_code != 200:
            raise Failed(f"token endpoint: {response.status_code} {response.text[:300]}")
        return response.json()["access_token"]

    def revoke(self, token: str) -> None:
        response = httpx2.post(f"{self.issuer}/revoke", data={"token": token}, timeout=REQUEST_TIMEOUT)
        if response.status_code != 200:
            raise Failed(f"revocation endpoint: {response.status_code} {response.text[:300]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Gateway:
    """The gateway binary in a child process, in front of `upstream`: an
    API key, and the bearer tokens `tokens` configures (variables)."""

    def __init__(self, binary: str, tmp: Path, upstream: str, port: int, tokens: dict[str, str], name: str = "gateway") -> None:
        self.origin = f"http://127.0.0.1:{port}"
        self.url = f"{self.origin}/mcp"
        self.api_key = "mcp_sk_" + secrets.token_hex(20)
        self.jwt_secret = tokens.get("JWT_SECRET", "")
        self.log = tmp / f"{name}.log"
        env = {
            **os.environ,
            "UPSTREAM_URL": upstream,
            "BIND": f"127.0.0.1:{port}",
            "PUBLIC_URL": self.url,
            "API_KEY": f"admin:{self.api_key}",
            **tokens,
            "POLICY_FILE": str(HERE / "policy.toml"),
            "RATE_LIMIT_PER_MINUTE": "6000",
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
        }
        self.proc = subprocess.Popen([binary], env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        wait_port(port, self.proc, self.log, "the gateway")

    def token(self, subject: str, scopes: str, secret: str | None = None) -> str:
        now = int(time.time())
        claims = {"sub": subject, "aud": self.url, "iat": now, "exp": now + 600, "scope": scopes}
        return jwt.encode(claims, secret or self.jwt_secret, algorithm="HS256")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ───────────────────────────── a raw MCP client ─────────────────────────────


def messages(response: httpx2.Response) -> list[dict]:
    """The JSON-RPC messages of an answer: a JSON body or SSE events."""
    kind = response.headers.get("content-type", "")
    if "text/event-stream" in kind:
        out = []
        for event in response.text.replace("\r\n", "\n").split("\n\n"):
            data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
            if data.strip():
                out.append(json.loads(data))
        return out
    if "json" in kind and response.content:
        body = response.json()
        return body if isinstance(body, list) else [body]
    return []


class Raw:
    """Plain HTTP, to see statuses and headers the SDKs hide."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.http = httpx2.Client(headers=headers, timeout=REQUEST_TIMEOUT)
        self.session: str | None = None
        self.next_id = 1

    def post(self, body: dict, headers: dict[str, str] | None = None) -> httpx2.Response:
        h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", "MCP-Protocol-Version": PROTOCOL}
        if self.session:
            h["Mcp-Session-Id"] = self.session
        h.update(headers or {})
        return self.http.post(self.url, content=json.dumps(body), headers=h)

    def request(self, method: str, params: dict | None = None) -> tuple[httpx2.Response, dict | None, int]:
        """One request; its answer, the message with its id, and the id."""
        rid = self.next_id
        self.next_id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            body["params"] = params
        response = self.post(body)
        found = next((m for m in messages(response) if m.get("id") == rid), None)
        return response, found, rid

    def initialize(self) -> httpx2.Response:
        response, message, _ = self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "gateway-driver", "version": "1"}},
        )
        if response.status_code == 200 and message and "result" in message:
            self.session = response.headers.get("mcp-session-id")
            self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response

    def result(self, method: str, params: dict | None = None) -> dict:
        response, message, _ = self.request(method, params)
        expect(response.status_code == 200, f"{method}: HTTP {response.status_code}: {response.text[:300]}")
        expect(message is not None and "result" in message, f"{method}: no result: {response.text[:300]}")
        return message["result"]

    def tool(self, name: str, arguments: dict) -> dict:
        result = self.result("tools/call", {"name": name, "arguments": arguments})
        expect(not result.get("isError"), f"{name}: tool error: {json.dumps(result)[:300]}")
        return result.get("structuredContent") or json.loads(result["content"][0]["text"])

    def refused(self, name: str, arguments: dict) -> dict:
        """A tools/call the gateway must refuse with 403 and a JSON-RPC
        error for the request's id."""
        response, message, rid = self.request("tools/call", {"name": name, "arguments": arguments})
        expect(response.status_code == 403, f"{name}: expected 403, got HTTP {response.status_code}: {response.text[:300]}")
        expect(message is not None and "error" in message, f"{name}: 403 without a JSON-RPC error for id {rid}: {response.text[:300]}")
        return {"status": 403, "code": message["error"].get("code")}

    def listed(self, method: str, key: str, field: str) -> set[str]:
        return {item[field] for item in self.result(method).get(key, [])}

    def close(self) -> None:
        self.http.close()


def opened(gateway: Gateway, headers: dict[str, str]) -> Raw:
    raw = Raw(gateway.url, headers)
    response = raw.initialize()
    expect(response.status_code == 200, f"initialize: HTTP {response.status_code}: {response.text[:300]}")
    return raw


# ───────────────────────────── checks ─────────────────────────────


def upstream(_gw: Gateway, fm: Fastmcp, _ctx: dict) -> dict:
    """The FastMCP server reached directly (no gateway, no credential):
    it serves every tool to anyone, so what the gateway hides and refuses
    below is the gateway's doing."""
    raw = Raw(fm.url, {})
    response = raw.initialize()
    expect(response.status_code == 200, f"FastMCP initialize: HTTP {response.status_code}: {response.text[:300]}")
    tools = raw.listed("tools/list", "tools", "name")
    raw.close()
    expect(tools == ALL_TOOLS, f"FastMCP lists {sorted(tools)}, expected {sorted(ALL_TOOLS)}")
    return {"tools": len(tools)}


def anonymous(gw: Gateway, _fm: Fastmcp, _ctx: dict) -> dict:
    raw = Raw(gw.url, {})
    response = raw.initialize()
    expect(response.status_code == 401, f"no credential: expected 401, got {response.status_code}")
    challenge = response.headers.get("www-authenticate", "")
    expect(challenge.lower().startswith("bearer") and "resource_metadata=" in challenge, f"challenge: {challenge!r}")
    metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    metadata = httpx2.get(metadata_url, timeout=REQUEST_TIMEOUT).json()
    expect(metadata.get("resource") == gw.url, f"metadata resource {metadata.get('resource')!r}, public URL {gw.url}")
    wrong_key = Raw(gw.url, {"X-API-Key": "mcp_sk_" + secrets.token_hex(20)}).initialize().status_code
    expect(wrong_key == 401, f"wrong API key: expected 401, got {wrong_key}")
    forged = gw.token("mallory", "read:data admin:write", secret=secrets.token_hex(32))
    forged_status = Raw(gw.url, {"Authorization": f"Bearer {forged}"}).initialize().status_code
    expect(forged_status == 401, f"token signed with another key: expected 401, got {forged_status}")
    return {"challenge": challenge, "metadata_resource": metadata["resource"], "wrong_key": wrong_key, "forged_token": forged_status}


def lists(raw: Raw) -> dict[str, set[str]]:
    return {
        "tools": raw.listed("tools/list", "tools", "name"),
        "resources": raw.listed("resources/list", "resources", "uri"),
        "templates": raw.listed("resources/templates/list", "resourceTemplates", "uriTemplate"),
        "prompts": raw.listed("prompts/list", "prompts", "name"),
    }


def api_key(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    cookie = "session=" + secrets.token_hex(16)
    ctx["secrets"].append(cookie.split("=", 1)[1])
    raw = opened(gw, {"X-API-Key": gw.api_key, "Cookie": cookie})
    seen = lists(raw)
    expect(seen["tools"] == API_KEY_TOOLS, f"tools/list: {sorted(seen['tools'])}, expected {sorted(API_KEY_TOOLS)}")
    expect("admin://system/stats" in seen["resources"], f"resources/list: {sorted(seen['resources'])}")
    expect(seen["templates"] == set(), f"resources/templates/list (bearer read:data only): {sorted(seen['templates'])}")
    expect(seen["prompts"] == {"summarize_user"}, f"prompts/list: {sorted(seen['prompts'])}")
    created = raw.tool("create_admin_user", {"name": "Carol", "email": "carol@example.com"})
    users = raw.tool("list_all_users", {})
    expect(created["user_id"] in users["users"], f"created {created}, listed {users}")
    refusals = {
        "get_user_data": raw.refused("get_user_data", {"user_id": "user_001"}),
        "update_user_data": raw.refused("update_user_data", {"user_id": "user_001", "email": "key@evil.example"}),
        "experimental_operation": raw.refused("experimental_operation", {"param": "x"}),
    }
    # The refused update never reached Python: the record is unchanged.
    record = raw.tool("get_user_by_id", {"user_id": "user_001"})
    expect(record["email"] == "alice@example.com", f"a refused update_user_data changed the record: {record}")
    raw.close()
    return {"tools": sorted(seen["tools"]), "resources": sorted(seen["resources"]), "created": created["user_id"], "refused": refusals}


def bearer_read(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    token = gw.token("alice", "read:data")
    ctx["secrets"].append(token)
    raw = opened(gw, {"Authorization": f"Bearer {token}"})
    seen = lists(raw)
    expect(seen["tools"] == READ_DATA_TOOLS, f"tools/list: {sorted(seen['tools'])}, expected {sorted(READ_DATA_TOOLS)}")
    expect("admin://system/stats" not in seen["resources"], f"resources/list shows the API-key-only resource: {sorted(seen['resources'])}")
    expect(seen["templates"] == {"user://{user_id}/private"}, f"resources/templates/list: {sorted(seen['templates'])}")
    data = raw.tool("get_user_data", {"user_id": "user_001"})
    expect(data.get("name") == "Alice", f"get_user_data: {data}")
    private = raw.result("resources/read", {"uri": "user://user_001/private"})
    refusals = {
        "update_user_data": raw.refused("update_user_data", {"user_id": "user_001", "email": "alice@evil.example"}),
        "delete_user": raw.refused("delete_user", {"user_id": "user_001"}),
        "list_all_users": raw.refused("list_all_users", {}),
        "create_admin_user": raw.refused("create_admin_user", {"name": "Eve", "email": "eve@example.com"}),
        "experimental_operation": raw.refused("experimental_operation", {"param": "x"}),
    }
    stats = raw.request("resources/read", {"uri": "admin://system/stats"})[0].status_code
    expect(stats == 403, f"resources/read admin://system/stats with read:data: expected 403, got {stats}")
    # Neither refused call reached Python: user_001 is there, unchanged.
    after = raw.tool("get_user_data", {"user_id": "user_001"})
    expect(after.get("email") == "alice@example.com", f"a refused call changed user_001: {after}")
    raw.close()
    return {"tools": sorted(seen["tools"]), "private_read": bool(private.get("contents")), "refused": refusals, "stats_read": stats}


def bearer_admin(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    token = gw.token("admin-bob", "admin:write")
    ctx["secrets"].append(token)
    raw = opened(gw, {"Authorization": f"Bearer {token}"})
    tools = raw.listed("tools/list", "tools", "name")
    expect(tools == ADMIN_WRITE_TOOLS, f"tools/list: {sorted(tools)}, expected {sorted(ADMIN_WRITE_TOOLS)}")
    deleted = raw.tool("delete_user", {"user_id": "user_002"})
    refused = raw.refused("get_user_data", {"user_id": "user_001"})
    raw.close()
    return {"tools": sorted(tools), "deleted": deleted, "refused": refused}


async def sdk_session(url: str, headers: dict[str, str]) -> dict:
    async with httpx2.AsyncClient(headers=headers, timeout=REQUEST_TIMEOUT) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = sorted(t.name for t in (await session.list_tools()).tools)
                result = await session.call_tool("get_user_data", {"user_id": "user_001"})
                headers_seen = await session.call_tool("echo_headers", {})
    expect(not result.is_error, f"get_user_data: {result}")
    return {
        "server": init.server_info.name,
        "tools": tools,
        "get_user_data": result.structured_content,
        "echo_headers": headers_seen.structured_content,
    }


def sdk_bearer(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    token = gw.token("sdk-alice", "read:data")
    ctx["secrets"].append(token)
    got = asyncio.run(sdk_session(gw.url, {"Authorization": f"Bearer {token}"}))
    expect(set(got["tools"]) == READ_DATA_TOOLS, f"tools: {got['tools']}")
    expect((got["get_user_data"] or {}).get("name") == "Alice", f"get_user_data: {got['get_user_data']}")
    names = {name.lower() for name, _ in got["echo_headers"]["headers"]}
    expect(not names & CREDENTIAL_HEADERS, f"the Python tool saw {sorted(names & CREDENTIAL_HEADERS)}")
    return {"server": got["server"], "tools": got["tools"], "headers_seen_by_tool": sorted(names)}


async def fastmcp_session(url: str, token: str) -> dict:
    from fastmcp import Client

    async with Client(url, auth=token) as client:
        tools = sorted(t.name for t in await client.list_tools())
        result = await client.call_tool("get_user_data", {"user_id": "user_001"})
    return {"tools": tools, "get_user_data": result.structured_content}


def fastmcp_client(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    token = gw.token("fastmcp-alice", "read:data")
    ctx["secrets"].append(token)
    got = asyncio.run(fastmcp_session(gw.url, token))
    expect(set(got["tools"]) == READ_DATA_TOOLS, f"tools: {got['tools']}")
    expect((got["get_user_data"] or {}).get("name") == "Alice", f"get_user_data: {got['get_user_data']}")
    return got


def ts_sdk_bearer(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    token = gw.token("ts-alice", "read:data")
    ctx["secrets"].append(token)
    done = subprocess.run(
        ["node", str(HERE / "ts_client.mjs"), "bearer"],
        env={**os.environ, "MCP_URL": gw.url, "MCP_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    expect(done.returncode == 0, f"ts_client.mjs exited with {done.returncode}: {done.stderr[-600:]}")
    got = json.loads(done.stdout)
    expect(set(got["tools"]) == READ_DATA_TOOLS, f"tools: {got['tools']}")
    expect((got["get_user_data"] or {}).get("name") == "Alice", f"get_user_data: {got['get_user_data']}")
    names = {name.lower() for name, _ in got["echo_headers"]["headers"]}
    expect(not names & CREDENTIAL_HEADERS, f"the Python tool saw {sorted(names & CREDENTIAL_HEADERS)}")
    return {"server": got["server"], "tools": got["tools"], "headers_seen_by_tool": sorted(names)}


# ───────────────────────────── OAuth through the gateway ─────────────────────────────


def bearer_tools(scope: str | None) -> set[str]:
    """The tools policy.toml lets a bearer token with `scope` call."""
    granted = set((scope or "").split())
    return AUTHENTICATED_TOOLS.union(*(tools for s, tools in TOOLS_BY_SCOPE.items() if s in granted))


def oauth_metadata(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    """What an OAuth client discovers from the gateway's 401: the RFC 9728
    metadata at the gateway's public URL names the authorization server
    and the scopes the policy uses; the server's RFC 8414 metadata offers
    PKCE."""
    response = Raw(gw.url, {}).initialize()
    expect(response.status_code == 401, f"no credential: expected 401, got {response.status_code}")
    challenge = response.headers.get("www-authenticate", "")
    metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    expect(metadata_url.startswith(gw.origin + "/.well-known/oauth-protected-resource"), f"resource_metadata {metadata_url}")
    metadata = httpx2.get(metadata_url, timeout=REQUEST_TIMEOUT).json()
    issuer = ctx["auth"].issuer
    servers = [s.rstrip("/") for s in metadata.get("authorization_servers", [])]
    expect(servers == [issuer], f"authorization_servers {metadata.get('authorization_servers')}, expected [{issuer}]")
    scopes = set(metadata.get("scopes_supported", []))
    expect(set(TOOLS_BY_SCOPE) <= scopes, f"scopes_supported {sorted(scopes)}")
    # RFC 8414 first, then OpenID discovery, as the SDKs look (the mock
    # authorization server has only the latter).
    for well_known in ("oauth-authorization-server", "openid-configuration"):
        found = httpx2.get(f"{issuer}/.well-known/{well_known}", timeout=REQUEST_TIMEOUT)
        if found.status_code == 200:
            break
    expect(found.status_code == 200, f"no authorization server metadata at {issuer}: {found.status_code}")
    server = found.json()
    expect("S256" in server.get("code_challenge_methods_supported", []), f"authorization server metadata: {server}")
    return {"resource_metadata": metadata_url, "authorization_servers": servers, "scopes_supported": sorted(scopes), "server_metadata": well_known}


def password_token(issuer: str, resource: str, scope: str) -> str:
    """A token granted earlier to johndoe, the user the authorization code
    grant names (a password grant), so that a step-up stays with one
    principal: the gateway binds each session to the principal that opened
    it."""
    response = httpx2.post(
        f"{issuer}/token",
        data={"grant_type": "password", "username": "johndoe", "password": "unused", "client_id": interop.CLIENT_ID, "scope": scope, "resource": resource},
        timeout=REQUEST_TIMEOUT,
    )
    expect(response.status_code == 200, f"token endpoint: {response.status_code} {response.text[:300]}")
    return response.json()["access_token"]


async def sdk_oauth_session(url: str, storage: Any, call: tuple[str, dict]) -> dict:
    """The Python SDK's OAuthClientProvider (the "browser" automated by
    tests/interop/python/client.py's Browser): a session, the tools, one
    call and echo_headers."""
    recorder = interop.Recorder()
    browser = interop.Browser(recorder.log)
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="tower-mcp-auth interop (Python, gateway)",
            redirect_uris=[interop.REDIRECT_URL],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=REQUEST_TIMEOUT, event_hooks={"response": [recorder.response]}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = sorted(t.name for t in (await session.list_tools()).tools)
                result = await session.call_tool(*call)
                headers_seen = await session.call_tool("echo_headers", {})
    expect(not result.is_error, f"{call[0]}: {result}")
    return {
        "server": init.server_info.name,
        "tools": tools,
        call[0]: result.structured_content,
        "echo_headers": headers_seen.structured_content,
        "token": storage.tokens.access_token if storage.tokens else None,
        "authorizations": browser.authorizations,
        "requests": recorder.log,
    }


def ts_session(mode: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        ["node", str(HERE / "ts_client.mjs"), mode],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT * 2,
    )
    expect(done.returncode == 0, f"ts_client.mjs {mode} exited with {done.returncode}: {done.stderr[-600:]}")
    return json.loads(done.stdout)


def authorized(gw: Gateway, got: dict, ctx: dict) -> dict:
    """What every OAuth flow must show: it authorized against the gateway's
    resource with PKCE, and the Python tool saw no credential."""
    expect(got["token"], "no access token after the flow")
    ctx["secrets"].append(got["token"])
    expect(got["authorizations"], f"the client never authorized: {got['requests']}")
    first = got["authorizations"][0]
    expect(first.get("resource") == gw.url, f"authorization request resource {first.get('resource')!r}, expected {gw.url}")
    expect(first.get("code_challenge_method") == "S256", f"authorization request without PKCE S256: {first}")
    names = {name.lower() for name, _ in got["echo_headers"]["headers"]}
    expect(not names & CREDENTIAL_HEADERS, f"the Python tool saw {sorted(names & CREDENTIAL_HEADERS)}")
    return {
        "requested_scope": first.get("scope"),
        "token_scope": interop.token_scope(got["token"]),
        "tools": got["tools"],
        "headers_seen_by_tool": sorted(names),
        "requests": got["requests"],
    }


def oauth_flow(gw: Gateway, got: dict, ctx: dict) -> dict:
    """No credential to a tool call: 401, metadata, authorization, token."""
    details = authorized(gw, got, ctx)
    expect(any(r.startswith("POST " + gw.url) and r.endswith("-> 401") for r in got["requests"]), f"no 401 from the gateway first: {got['requests']}")
    expect(any("/.well-known/oauth-protected-resource" in r for r in got["requests"]), f"the client never read the gateway's metadata: {got['requests']}")
    expected = bearer_tools(details["token_scope"])
    expect(set(got["tools"]) == expected, f"tools/list {got['tools']} for scope {details['token_scope']!r}, expected {sorted(expected)}")
    expect((got["get_user_data"] or {}).get("name") == "Alice", f"get_user_data: {got['get_user_data']}")
    return details


def step_up_flow(gw: Gateway, got: dict, ctx: dict, email: str) -> dict:
    """A read:data token calls update_user_data: 403 insufficient_scope,
    the client authorizes again with write:data, the call reaches Python."""
    details = authorized(gw, got, ctx)
    expect(any(r.endswith("-> 403") for r in got["requests"]), f"no 403 from the gateway: {got['requests']}")
    expect("write:data" in (details["requested_scope"] or "").split(), f"the step-up asked for {details['requested_scope']!r}, not write:data")
    expect(set(got["tools"]) == READ_DATA_TOOLS, f"tools/list with read:data: {got['tools']}")
    expect((got["update_user_data"] or {}).get("status") == "success", f"update_user_data: {got['update_user_data']}")
    # The update reached the Python tool: read back with the API key.
    raw = opened(gw, {"X-API-Key": gw.api_key})
    record = raw.tool("get_user_by_id", {"user_id": "user_001"})
    raw.close()
    expect(record["email"] == email, f"after the step-up, user_001 is {record}")
    return details


def sdk_oauth(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    got = asyncio.run(sdk_oauth_session(gw.url, interop.MemoryStorage(), ("get_user_data", {"user_id": "user_001"})))
    return oauth_flow(gw, got, ctx)


def ts_sdk_oauth(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    return oauth_flow(gw, ts_session("oauth", {"MCP_URL": gw.url}), ctx)


def sdk_step_up(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    initial = password_token(ctx["auth"].issuer, gw.url, "read:data")
    ctx["secrets"].append(initial)
    # Without a refresh token: with one, the SDK refreshes instead of
    # authorizing again, and a refresh cannot widen the scope.
    storage = interop.MemoryStorage(OAuthToken(access_token=initial, scope="read:data", expires_in=3600))
    email = "py-stepped@example.com"
    got = asyncio.run(sdk_oauth_session(gw.url, storage, ("update_user_data", {"user_id": "user_001", "email": email})))
    return step_up_flow(gw, got, ctx, email)


def ts_sdk_step_up(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    got = ts_session("step_up", {"MCP_URL": gw.url, "AS_ISSUER": ctx["auth"].issuer})
    return step_up_flow(gw, got, ctx, "ts-stepped@example.com")


def authserver_requests(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    """What the clients sent the authorization server (RFC 8707, PKCE):
    every authorization and code exchange named the gateway's public URL
    as the resource and used PKCE."""
    seen = ctx["auth"].requests()
    interactive = [r for r in seen if r["endpoint"] == "authorize" or r.get("grant_type") == "authorization_code"]
    wrong = [r for r in interactive if r.get("resource") != gw.url or r.get("pkce") is not True]
    expect(not wrong, f"the authorization server saw {wrong}")
    codes = sum(1 for r in interactive if r.get("grant_type") == "authorization_code")
    # sdk_oauth, ts_sdk_oauth, sdk_step_up, ts_sdk_step_up.
    expect(codes >= 4, f"expected a code exchange per OAuth flow: {seen}")
    return {"authorizations": len(interactive) - codes, "code_exchanges": codes}


def introspection(gw: Gateway, fm: Fastmcp, ctx: dict) -> dict:
    """A second gateway in front of the same FastMCP server that takes
    bearer tokens by RFC 7662 introspection only (OAUTH_INTROSPECTION_URL,
    OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET; no JWT_SECRET, no OAUTH_ISSUER):
    the Python and TypeScript SDKs' clients with a client-credentials token
    get the read:data tools; a token the authorization server revoked
    before its first use, and one it never issued, are refused with 401."""
    auth = ctx["auth"]
    port = free_port()
    tokens = {
        "OAUTH_INTROSPECTION_URL": f"{auth.issuer}/introspect",
        "OAUTH_CLIENT_ID": auth.client_id,
        "OAUTH_CLIENT_SECRET": auth.client_secret,
    }
    other = Gateway(ctx["binary"], ctx["tmp"], fm.url, port, tokens, name="gateway-introspection")
    try:
        token = auth.client_credentials("read:data", other.url)
        # Another scope: two tokens for one grant in the same second would
        # be the same JWT (the mock server adds no jti).
        revoked = auth.client_credentials("read:data admin:write", other.url)
        ctx["secrets"] += [token, revoked, other.api_key]
        auth.revoke(revoked)
        got = asyncio.run(sdk_session(other.url, {"Authorization": f"Bearer {token}"}))
        expect(set(got["tools"]) == READ_DATA_TOOLS, f"Python SDK tools: {got['tools']}")
        expect((got["get_user_data"] or {}).get("name") == "Alice", f"get_user_data: {got['get_user_data']}")
        ts = ts_session("bearer", {"MCP_URL": other.url, "MCP_TOKEN": token})
        expect(set(ts["tools"]) == READ_DATA_TOOLS, f"TypeScript SDK tools: {ts['tools']}")
        names = {name.lower() for r in (got, ts) for name, _ in r["echo_headers"]["headers"]}
        expect(not names & CREDENTIAL_HEADERS, f"the Python tool saw {sorted(names & CREDENTIAL_HEADERS)}")
        statuses = {
            "revoked": Raw(other.url, {"Authorization": f"Bearer {revoked}"}).initialize().status_code,
            "never_issued": Raw(other.url, {"Authorization": f"Bearer opaque-{secrets.token_hex(16)}"}).initialize().status_code,
        }
        expect(statuses == {"revoked": 401, "never_issued": 401}, f"expected 401 for both: {statuses}")
        metadata = httpx2.get(f"{other.origin}/.well-known/oauth-protected-resource/mcp", timeout=REQUEST_TIMEOUT).json()
        expect(metadata.get("resource") == other.url, f"metadata: {metadata}")
    except Exception:
        print(f"--- introspection gateway log ---\n{other.log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        other.stop()
    return {"tools": got["tools"], "ts_tools": ts["tools"], "refused": statuses, "headers_seen_by_tool": sorted(names)}


def no_passthrough(gw: Gateway, fm: Fastmcp, ctx: dict) -> dict:
    token = gw.token("carol", "read:data")
    cookie = "sid=" + secrets.token_hex(16)
    ctx["secrets"] += [token, cookie.split("=", 1)[1]]
    raw = opened(gw, {"Authorization": f"Bearer {token}", "Cookie": cookie})
    seen = raw.tool("echo_headers", {})
    raw.close()
    tool_names = {name.lower() for name, _ in seen["headers"]}
    expect(not tool_names & CREDENTIAL_HEADERS, f"the Python tool saw {sorted(tool_names & CREDENTIAL_HEADERS)}")
    # Every request the FastMCP server received in this run.
    received = fm.requests()
    expect(len(received) >= 10, f"the FastMCP server logged only {len(received)} requests: is its header log working?")
    names = {name.lower() for r in received for name, _ in r["headers"]}
    values = " ".join(value for r in received for _, value in r["headers"])
    leaked = [s[:12] + "…" for s in ctx["secrets"] + [gw.api_key] if s in values]
    expect(not names & CREDENTIAL_HEADERS, f"the FastMCP server received {sorted(names & CREDENTIAL_HEADERS)}")
    expect(not leaked, f"the FastMCP server received the caller's secrets {leaked}")
    return {"requests_received": len(received), "header_names": sorted(names), "secrets_checked": len(ctx["secrets"]) + 1}


def session_bound(gw: Gateway, _fm: Fastmcp, ctx: dict) -> dict:
    alice = gw.token("alice", "read:data")
    mallory = gw.token("mallory", "read:data")
    ctx["secrets"] += [alice, mallory]
    raw = opened(gw, {"Authorization": f"Bearer {alice}"})
    expect(raw.session is not None, "no Mcp-Session-Id from a stateful upstream")
    thief = Raw(gw.url, {"Authorization": f"Bearer {mallory}"})
    thief.session = raw.session
    response, message, _ = thief.request("tools/list")
    expect(response.status_code in (400, 401, 403, 404), f"another caller's session id: expected a refusal, got {response.status_code}: {response.text[:300]}")
    # The owner still works.
    tools = raw.listed("tools/list", "tools", "name")
    raw.close()
    thief.close()
    return {"foreign_session_status": response.status_code, "owner_tools": len(tools)}


def upstream_down(gw: Gateway, fm: Fastmcp, _ctx: dict) -> dict:
    raw = opened(gw, {"X-API-Key": gw.api_key})
    fm.stop()
    started = time.monotonic()
    response, message, rid = raw.request("tools/call", {"name": "protected_operation", "arguments": {"param": "x"}})
    expect(response.status_code in (502, 504), f"upstream stopped: expected 502 or 504, got {response.status_code}: {response.text[:300]}")
    expect(message is not None and "error" in message, f"upstream stopped: no JSON-RPC error for id {rid}: {response.text[:300]}")
    raw.close()
    return {"status": response.status_code, "error": message["error"], "seconds": round(time.monotonic() - started, 2)}


CHECKS: list[tuple[str, Callable[[Gateway, Fastmcp, dict], dict], bool]] = [
    # name, check, only with sessions
    ("upstream", upstream, False),
    ("anonymous", anonymous, False),
    ("api_key", api_key, False),
    ("bearer_read", bearer_read, False),
    ("bearer_admin", bearer_admin, False),
    ("sdk_bearer", sdk_bearer, False),
    ("fastmcp_client", fastmcp_client, False),
    ("ts_sdk_bearer", ts_sdk_bearer, False),
    ("oauth_metadata", oauth_metadata, False),
    ("sdk_oauth", sdk_oauth, False),
    ("ts_sdk_oauth", ts_sdk_oauth, False),
    ("sdk_step_up", sdk_step_up, False),
    ("ts_sdk_step_up", ts_sdk_step_up, False),
    ("authserver_requests", authserver_requests, False),
    ("introspection", introspection, False),
    ("session_bound", session_bound, True),
    ("no_passthrough", no_passthrough, False),
    # Last: it stops the upstream.
    ("upstream_down", upstream_down, False),
]


def run_mode(binary: str, mode: str) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix=f"gateway-fastmcp-{mode}-") as tmp:
        tmp_path = Path(tmp)
        fm = Fastmcp(tmp_path, stateless=(mode == "stateless"))
        gw = auth = None
        try:
            port = free_port()
            auth = AuthServer(tmp_path, f"http://127.0.0.1:{port}/mcp")
            tokens = {
                "JWT_SECRET": secrets.token_hex(32),
                # The authorization server's tokens too: its keys found by
                # discovery from the issuer, which the metadata names.
                "OAUTH_ISSUER": auth.issuer,
            }
            gw = Gateway(binary, tmp_path, fm.url, port, tokens)
            ctx: dict = {"secrets": [tokens["JWT_SECRET"], auth.client_secret], "auth": auth, "binary": binary, "tmp": tmp_path}
            for name, check, sessions_only in CHECKS:
                if sessions_only and mode == "stateless":
                    continue
                try:
                    details, result = check(gw, fm, ctx), "pass"
                except Failed as e:
                    details, result = {"error": str(e)}, "fail"
                except Exception as e:  # a crash in a check is its failure
                    details, result = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=4)}, "fail"
                line = {"mode": mode, "check": name, "result": result, "details": details}
                print(json.dumps(line, default=str), flush=True)
                results.append(line)
            if any(r["result"] == "fail" for r in results):
                print(f"--- gateway log ({mode}) ---\n{gw.log.read_text()[-4000:]}", file=sys.stderr)
                print(f"--- FastMCP log ({mode}) ---\n{fm.log.read_text()[-2000:]}", file=sys.stderr)
                print(f"--- authorization server log ({mode}) ---\n{auth.log.read_text()[-2000:]}", file=sys.stderr)
        finally:
            if gw is not None:
                gw.stop()
            if auth is not None:
                auth.stop()
            fm.stop()
    return results


def main() -> int:
    binary = os.environ.get("GATEWAY_BIN") or str(ROOT / "target" / "debug" / "mcp-auth-gateway")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"driver.py: no gateway binary at {binary} (build it: cargo build -p tower-mcp-auth-gateway; or set GATEWAY_BIN)", file=sys.stderr)
        return 2
    try:
        import fastmcp
    except ImportError:
        print("driver.py: FastMCP is not installed; scripts/test installs it into target/interop-venv (tests/interop/python/requirements.txt)", file=sys.stderr)
        return 2
    for package, install in (
        ("authserver/node_modules/oauth2-mock-server", "npm ci --prefix tests/interop/authserver"),
        ("node/node_modules/@modelcontextprotocol/sdk", "npm ci --prefix tests/interop/node"),
    ):
        if not (HERE.parent / package / "package.json").exists():
            print(f"driver.py: tests/interop/{package} is not installed ({install}; scripts/test does it)", file=sys.stderr)
            return 2
    started = time.monotonic()
    results = []
    for mode in ("sessions", "stateless"):
        results += run_mode(binary, mode)
    print(f"\nFastMCP {fastmcp.__version__} behind {binary} ({time.monotonic() - started:.1f} s):\n", file=sys.stderr)
    checks = list(dict.fromkeys(r["check"] for r in results))
    table = [["check", "sessions (SSE)", "stateless (JSON)"]]
    for check in checks:
        row = [check]
        for mode in ("sessions", "stateless"):
            found = [r["result"] for r in results if r["check"] == check and r["mode"] == mode]
            row.append(found[0] if found else "-")
        table.append(row)
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=sys.stderr)
    failed = [f"{r['mode']}/{r['check']}" for r in results if r["result"] == "fail"]
    print(f"\ndriver.py: {'FAILED: ' + ', '.join(failed) if failed else 'every check passed'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
