"""The official MCP Python SDK (`mcp` on PyPI) as a client of tower-mcp-auth's
example server, for the interop tests (tests/interop.rs).

    python client.py FLOW...

FLOW is one of: api_key, wrong_key, bearer, bad_token, oauth, step_up. Each flow prints ONE JSON
line on stdout:

    {"client": "python", "flow": "api_key", "result": "pass"|"fail", "details": {...}}

and the process exits 0 (a failing flow is a result, not a crash).

Environment:
    MCP_URL          the MCP endpoint (the server's resource identifier)
    MCP_API_KEY      the X-API-Key value (api_key)
    AS_ISSUER        the authorization server (bearer, step_up: client
                     credentials at AS_ISSUER/token)
    OAUTH_CLIENT_ID  the client pre-registered at the authorization server
                     (oauth2-mock-server has no /register; default
                     "interop-client")
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import traceback
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

CLIENT = "python"
MCP_URL = os.environ.get("MCP_URL", "")
CLIENT_ID = os.environ.get("OAUTH_CLIENT_ID") or "interop-client"
# Never contacted: the authorization server's redirect is read, not followed.
REDIRECT_URL = "http://127.0.0.1:9/callback"


def emit(flow: str, result: str, details: dict) -> None:
    print(json.dumps({"client": CLIENT, "flow": flow, "result": result, "details": details}), flush=True)


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


def structured(result, tool: str) -> dict:
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise RuntimeError(f"{tool}: tool error: {text}")
    if result.structured_content is None:
        raise RuntimeError(f"{tool}: no structured content")
    return result.structured_content


def token_scope(token: str) -> str | None:
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("scope")
    except Exception:
        return None


class Recorder:
    """httpx2 event hooks: records "METHOD URL -> STATUS" for every request."""

    def __init__(self) -> None:
        self.log: list[str] = []

    async def response(self, response: httpx2.Response) -> None:
        request = response.request
        self.log.append(f"{request.method} {request.url} -> {response.status_code}")


async def client_credentials_token(scope: str) -> str:
    issuer = need("AS_ISSUER")
    async with httpx2.AsyncClient() as http:
        res = await http.post(
            f"{issuer}/token",
            data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "scope": scope, "resource": MCP_URL},
        )
        if res.status_code != 200:
            raise RuntimeError(f"token endpoint: {res.status_code} {res.text}")
        return res.json()["access_token"]


async def user_token(scope: str) -> str:
    """An access token granted earlier to the user who later steps up (the
    authorization code grant's `sub`, johndoe): a resource-owner password
    grant, so that the step-up stays with one principal, as the server's
    sessions require (a session belongs to the principal that opened it)."""
    issuer = need("AS_ISSUER")
    async with httpx2.AsyncClient() as http:
        res = await http.post(
            f"{issuer}/token",
            data={
                "grant_type": "password",
                "username": "johndoe",
                "password": "unused",
                "client_id": CLIENT_ID,
                "scope": scope,
                "resource": MCP_URL,
            },
        )
        if res.status_code != 200:
            raise RuntimeError(f"token endpoint: {res.status_code} {res.text}")
        return res.json()["access_token"]


async def api_key() -> tuple[bool, dict]:
    key = need("MCP_API_KEY")
    async with httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=30) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = sorted(t.name for t in (await session.list_tools()).tools)
                created = structured(
                    await session.call_tool(
                        "create_admin_user",
                        {"email": f"py-{time.time_ns()}@example.com", "name": "Python Interop"},
                    ),
                    "create_admin_user",
                )
                read_result = await session.read_resource("admin://system/stats")
                stats = json.loads(read_result.contents[0].text)
    ok = created["status"] == "success" and isinstance(stats.get("total_users"), int)
    return ok, {
        "server": init.server_info.name,
        "tools": tools,
        "created_user": created["user_id"],
        "created_by": created["created_by"],
        "stats_total_users": stats["total_users"],
        "stats_requested_by": stats.get("requested_by"),
    }


async def wrong_key() -> tuple[bool, dict]:
    """A wrong key is refused, and the SDK shows the server's reason."""
    headers = {"X-API-Key": "mcp_sk_interop-wrong-key-000000000"}
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
    except BaseException as exc:  # noqa: BLE001 - the refusal is the point
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        message = describe(exc)
        return "the API key is not valid" in message, {
            "refused": True,
            "shows_reason": "the API key is not valid" in message,
            "message": message[:300],
        }
    return False, {"error": "initialize succeeded with a wrong key"}


async def bearer() -> tuple[bool, dict]:
    token = await client_credentials_token("read:data")
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                user = structured(await session.call_tool("get_user_data", {"user_id": "user_001"}), "get_user_data")
    return user["id"] == "user_001", {"user": user["id"], "email": user["email"]}


async def bad_token() -> tuple[bool, dict]:
    """A token the server rejects is refused, and the SDK shows the reason."""
    try:
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer not.a.jwt"}, timeout=30) as http:
            async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
    except BaseException as exc:  # noqa: BLE001 - the refusal is the point
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        message = describe(exc)
        shows = "Server returned an error response" not in message and "MCPError" in message
        return shows, {"refused": True, "shows_reason": shows, "message": message[:300]}
    return False, {"error": "initialize succeeded with a bad token"}


class MemoryStorage:
    """The SDK's TokenStorage, in memory, with a pre-registered public client."""

    def __init__(self, tokens: OAuthToken | None = None) -> None:
        self.tokens = tokens
        self.client_info = OAuthClientInformationFull(
            client_id=CLIENT_ID,
            redirect_uris=[REDIRECT_URL],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        )

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Browser:
    """The automated "browser": reads the authorization server's redirect
    (without following it) and hands the code to the SDK's callback."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.authorizations: list[dict] = []
        self.result: AuthorizationCodeResult | None = None

    async def redirect(self, url: str) -> None:
        query = parse_qs(urlparse(url).query)
        self.authorizations.append(
            {
                "scope": query.get("scope", [None])[0],
                "resource": query.get("resource", [None])[0],
                "code_challenge_method": query.get("code_challenge_method", [None])[0],
            }
        )
        async with httpx2.AsyncClient(follow_redirects=False) as http:
            res = await http.get(url)
        parsed = urlparse(url)
        self.log.append(f"GET {parsed.scheme}://{parsed.netloc}{parsed.path} -> {res.status_code}")
        location = res.headers.get("location")
        if not location:
            raise RuntimeError(f"authorization endpoint answered {res.status_code} without a redirect")
        back = parse_qs(urlparse(location).query)
        if "error" in back:
            raise RuntimeError(f"authorization error: {back['error'][0]}")
        self.result = AuthorizationCodeResult(code=back["code"][0], state=back.get("state", [None])[0])

    async def callback(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("no authorization redirect happened")
        result, self.result = self.result, None
        return result


def provider(storage: MemoryStorage, browser: Browser) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=MCP_URL,
        client_metadata=OAuthClientMetadata(
            client_name="tower-mcp-auth interop (Python)",
            redirect_uris=[REDIRECT_URL],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )


async def oauth() -> tuple[bool, dict]:
    recorder = Recorder()
    browser = Browser(recorder.log)
    storage = MemoryStorage()
    auth = provider(storage, browser)
    async with httpx2.AsyncClient(auth=auth, timeout=30, event_hooks={"response": [recorder.response]}) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                user = structured(await session.call_tool("get_user_data", {"user_id": "user_002"}), "get_user_data")
    first = browser.authorizations[0] if browser.authorizations else {}
    ok = bool(browser.authorizations) and user["id"] == "user_002" and first.get("resource") == MCP_URL
    return ok, {
        "authorized": bool(browser.authorizations),
        "requested_scope": first.get("scope"),
        "resource": first.get("resource"),
        "pkce": first.get("code_challenge_method"),
        "token_scope": token_scope(storage.tokens.access_token) if storage.tokens else None,
        "user": user["id"],
        "requests": recorder.log,
    }


async def step_up() -> tuple[bool, dict]:
    recorder = Recorder()
    browser = Browser(recorder.log)
    # A read:data token without a refresh token, as if granted earlier.
    initial = OAuthToken(access_token=await user_token("read:data"), scope="read:data", expires_in=3600)
    storage = MemoryStorage(initial)
    auth = provider(storage, browser)
    async with httpx2.AsyncClient(auth=auth, timeout=30, event_hooks={"response": [recorder.response]}) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                structured(await session.call_tool("get_user_data", {"user_id": "user_003"}), "get_user_data")
                updated = structured(
                    await session.call_tool(
                        "update_user_data", {"user_id": "user_003", "data": {"department": "Audit"}}
                    ),
                    "update_user_data",
                )
    saw_403 = any(line.endswith("-> 403") for line in recorder.log)
    stepped = bool(browser.authorizations)
    first = browser.authorizations[0] if stepped else {}
    return saw_403 and stepped and updated["status"] == "success", {
        "saw_403": saw_403,
        "reauthorized": stepped,
        "requested_scope": first.get("scope"),
        "resource": first.get("resource"),
        "token_scope": token_scope(storage.tokens.access_token) if storage.tokens else None,
        "changed": updated.get("changed"),
        "requests": recorder.log,
    }


FLOWS = {"api_key": api_key, "wrong_key": wrong_key, "bad_token": bad_token, "bearer": bearer, "oauth": oauth, "step_up": step_up}


def describe(exc: BaseException) -> str:
    # Task groups wrap the real error; show the innermost ones.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return " | ".join(traceback.format_exception_only(type(exc), exc)).strip()[:600]


async def main(flows: list[str]) -> None:
    for flow in flows or list(FLOWS):
        run = FLOWS.get(flow)
        if run is None:
            emit(flow, "fail", {"error": f"unknown flow; known: {', '.join(FLOWS)}"})
            continue
        try:
            if not MCP_URL:
                raise RuntimeError("MCP_URL is not set")
            with anyio.fail_after(60):
                ok, details = await run()
            emit(flow, "pass" if ok else "fail", details)
        except BaseException as exc:  # noqa: BLE001 - every failure is a result line
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            emit(flow, "fail", {"error": describe(exc)})


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
