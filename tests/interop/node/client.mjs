// The official MCP TypeScript SDK (@modelcontextprotocol/sdk) as a client of
// tower-mcp-auth's example server, for the interop tests (tests/interop.rs).
//
//   node client.mjs FLOW...
//
// FLOW is one of: api_key, wrong_key, bearer, bad_token, oauth, step_up. Each flow prints ONE JSON
// line on stdout:
//
//   {"client":"typescript","flow":"api_key","result":"pass"|"fail","details":{...}}
//
// and the process exits 0 (a failing flow is a result, not a crash).
//
// Environment:
//   MCP_URL          the MCP endpoint (the server's resource identifier)
//   MCP_API_KEY      the X-API-Key value (api_key)
//   AS_ISSUER        the authorization server (bearer, step_up: client
//                    credentials at AS_ISSUER/token)
//   OAUTH_CLIENT_ID  the client pre-registered at the authorization server
//                    (oauth2-mock-server has no /register; default
//                    "interop-client")

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { AutomatedProvider } from "./automated_provider.mjs";

const CLIENT = "typescript";
const MCP_URL = process.env.MCP_URL;
const CLIENT_ID = process.env.OAUTH_CLIENT_ID || "interop-client";

function emit(flow, result, details) {
  process.stdout.write(JSON.stringify({ client: CLIENT, flow, result, details }) + "\n");
}

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

/** A fetch that records "METHOD URL -> STATUS" for every request. */
function recordingFetch(log) {
  return async (input, init) => {
    const res = await fetch(input, init);
    const url = typeof input === "string" ? input : input.url ?? String(input);
    log.push(`${init?.method ?? "GET"} ${url} -> ${res.status}`);
    return res;
  };
}

function newClient() {
  return new Client({ name: "tower-mcp-auth-interop-ts", version: "1.0.0" });
}

/** The structured result of a successful tool call, or an exception. */
function structured(result, tool) {
  if (result.isError) {
    const text = (result.content ?? []).map((c) => c.text ?? "").join(" ");
    throw new Error(`${tool}: tool error: ${text}`);
  }
  if (!result.structuredContent) throw new Error(`${tool}: no structured content`);
  return result.structuredContent;
}

/** A client_credentials access token from the authorization server. */
async function clientCredentialsToken(scope) {
  const issuer = need("AS_ISSUER");
  const res = await fetch(`${issuer}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: CLIENT_ID,
      scope,
      resource: MCP_URL,
    }),
  });
  if (!res.ok) throw new Error(`token endpoint: ${res.status} ${await res.text()}`);
  return (await res.json()).access_token;
}

/**
 * An access token granted earlier to the user who later steps up (the
 * authorization code grant's `sub`, johndoe): a resource-owner password
 * grant, so that the step-up stays with one principal, as the server's
 * sessions require (a session belongs to the principal that opened it).
 */
async function userToken(scope) {
  const issuer = need("AS_ISSUER");
  const res = await fetch(`${issuer}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "password",
      username: "johndoe",
      password: "unused",
      client_id: CLIENT_ID,
      scope,
      resource: MCP_URL,
    }),
  });
  if (!res.ok) throw new Error(`token endpoint: ${res.status} ${await res.text()}`);
  return (await res.json()).access_token;
}

// Flow 1: X-API-Key header through the transport's requestInit.
async function apiKey() {
  const key = need("MCP_API_KEY");
  const client = newClient();
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    requestInit: { headers: { "X-API-Key": key } },
  });
  await client.connect(transport);
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const created = structured(
      await client.callTool({
        name: "create_admin_user",
        arguments: { email: `ts-${Date.now()}@example.com`, name: "TypeScript Interop" },
      }),
      "create_admin_user",
    );
    const read = await client.readResource({ uri: "admin://system/stats" });
    const stats = JSON.parse(read.contents[0].text);
    const ok = created.status === "success" && typeof stats.total_users === "number";
    return {
      ok,
      details: {
        server: client.getServerVersion()?.name,
        tools,
        created_user: created.user_id,
        created_by: created.created_by,
        stats_total_users: stats.total_users,
        stats_requested_by: stats.requested_by,
      },
    };
  } finally {
    await client.close();
  }
}

// Flow 1b: a wrong key is refused, and the SDK shows the server's reason.
async function wrongKey() {
  const client = newClient();
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    requestInit: { headers: { "X-API-Key": "mcp_sk_interop-wrong-key-000000000" } },
  });
  try {
    await client.connect(transport);
    await client.close();
    return { ok: false, details: { error: "initialize succeeded with a wrong key" } };
  } catch (e) {
    const message = String(e?.message ?? e);
    return {
      ok: message.includes("401") || message.includes("the API key is not valid"),
      details: { refused: true, shows_reason: message.includes("the API key is not valid"), message: message.slice(0, 300) },
    };
  }
}

// Flow 2b: a token the server rejects is refused, with the reason shown.
async function badToken() {
  const client = newClient();
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    requestInit: { headers: { Authorization: "Bearer not.a.jwt" } },
  });
  try {
    await client.connect(transport);
    await client.close();
    return { ok: false, details: { error: "initialize succeeded with a bad token" } };
  } catch (e) {
    const message = String(e?.message ?? e);
    const shows = message.includes("invalid_token") && message.includes("error_description");
    return { ok: message.includes("401") || shows, details: { refused: true, shows_reason: shows, message: message.slice(0, 300) } };
  }
}

// Flow 2: a client-credentials token in the Authorization header.
async function bearer() {
  const token = await clientCredentialsToken("read:data");
  const client = newClient();
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  try {
    const user = structured(
      await client.callTool({ name: "get_user_data", arguments: { user_id: "user_001" } }),
      "get_user_data",
    );
    return { ok: user.id === "user_001", details: { user: user.id, email: user.email } };
  } finally {
    await client.close();
  }
}

function tokenScope(token) {
  try {
    return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")).scope ?? null;
  } catch {
    return null;
  }
}

// Flow 3: no credential; the SDK discovers and authorizes on the 401.
async function oauth() {
  const log = [];
  const provider = new AutomatedProvider(log, CLIENT_ID, "TypeScript");
  const fetchFn = recordingFetch(log);
  let transport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider, fetch: fetchFn });
  let client = newClient();
  let redirected = false;
  try {
    await client.connect(transport);
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    redirected = true;
    await transport.finishAuth(provider.code);
    await transport.close().catch(() => {});
    transport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider, fetch: fetchFn });
    client = newClient();
    await client.connect(transport);
  }
  try {
    const user = structured(
      await client.callTool({ name: "get_user_data", arguments: { user_id: "user_002" } }),
      "get_user_data",
    );
    const auth = provider.authorizations[0] ?? {};
    const ok = redirected && user.id === "user_002" && auth.resource === MCP_URL;
    return {
      ok,
      details: {
        authorized: redirected,
        requested_scope: auth.scope ?? null,
        resource: auth.resource ?? null,
        pkce: auth.code_challenge_method ?? null,
        token_scope: tokenScope(provider.tokens()?.access_token ?? ""),
        user: user.id,
        requests: log,
      },
    };
  } finally {
    await client.close();
  }
}

// Flow 4: a read:data token; update_user_data needs write:data.
async function stepUp() {
  const log = [];
  const provider = new AutomatedProvider(log, CLIENT_ID, "TypeScript");
  // A token without a refresh token: with one, the SDK refreshes instead of
  // re-authorizing, and a refresh cannot widen the scope.
  provider.saveTokens({ access_token: await userToken("read:data"), token_type: "Bearer" });
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    authProvider: provider,
    fetch: recordingFetch(log),
  });
  const client = newClient();
  await client.connect(transport);
  try {
    structured(
      await client.callTool({ name: "get_user_data", arguments: { user_id: "user_003" } }),
      "get_user_data",
    );
    const call = () =>
      client.callTool({
        name: "update_user_data",
        arguments: { user_id: "user_003", data: { department: "Treasury" } },
      });
    let stepped = false;
    let updated;
    try {
      updated = await call();
    } catch (e) {
      if (!(e instanceof UnauthorizedError)) throw e;
      stepped = true;
      await transport.finishAuth(provider.code);
      updated = await call();
    }
    const result = structured(updated, "update_user_data");
    const auth = provider.authorizations[0] ?? {};
    const saw403 = log.some((l) => l.endsWith("-> 403"));
    return {
      ok: stepped && saw403 && result.status === "success",
      details: {
        saw_403: saw403,
        reauthorized: stepped,
        requested_scope: auth.scope ?? null,
        resource: auth.resource ?? null,
        token_scope: tokenScope(provider.tokens()?.access_token ?? ""),
        changed: result.changed,
        requests: log,
      },
    };
  } finally {
    await client.close();
  }
}

const FLOWS = { api_key: apiKey, wrong_key: wrongKey, bearer, bad_token: badToken, oauth, step_up: stepUp };

const flows = process.argv.slice(2);
if (flows.length === 0) flows.push(...Object.keys(FLOWS));
for (const flow of flows) {
  const run = FLOWS[flow];
  if (!run) {
    emit(flow, "fail", { error: `unknown flow; known: ${Object.keys(FLOWS).join(", ")}` });
    continue;
  }
  try {
    if (!MCP_URL) throw new Error("MCP_URL is not set");
    const { ok, details } = await run();
    emit(flow, ok ? "pass" : "fail", details);
  } catch (e) {
    emit(flow, "fail", { error: String(e?.stack ?? e).split("\n").slice(0, 4).join(" | ") });
  }
}
process.exit(0);
