// The official MCP TypeScript SDK's client (installed by scripts/test in
// tests/interop/node) through the gateway, for driver.py:
//
//   MCP_URL=http://127.0.0.1:PORT/mcp MCP_TOKEN=… node ts_client.mjs bearer
//   MCP_URL=… node ts_client.mjs oauth
//   MCP_URL=… AS_ISSUER=http://127.0.0.1:PORT node ts_client.mjs step_up
//
// bearer: with the token MCP_TOKEN. oauth: with no credential, the SDK's
// own OAuth client (automated_provider.mjs beside the SDK) answers the
// gateway's 401: protected-resource metadata, the authorization server's
// metadata, authorization code + PKCE for the pre-registered client
// "interop-client", then a new session. step_up: with a read:data token
// for johndoe (a password grant at AS_ISSUER, the user the code grant
// names), update_user_data is refused with 403 insufficient_scope; the SDK
// authorizes again with the scope the challenge names and the call is
// repeated.
//
// Each opens a session (initialize), lists the tools, calls get_user_data
// (bearer, oauth) or update_user_data (step_up) and echo_headers, and
// prints one JSON line: {"server", "tools", "get_user_data" |
// "update_user_data", "echo_headers", "token", "authorizations",
// "requests"}. Any failure is an exception: exit status 1 with the message
// on stderr.

import { Client } from "../node/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js";
import { StreamableHTTPClientTransport } from "../node/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js";
import { UnauthorizedError } from "../node/node_modules/@modelcontextprotocol/sdk/dist/esm/client/auth.js";
import { AutomatedProvider } from "../node/automated_provider.mjs";

const CLIENT_ID = "interop-client";
const url = process.env.MCP_URL;
const mode = process.argv[2] ?? "bearer";
if (!url || !["bearer", "oauth", "step_up"].includes(mode) || (mode === "bearer" && !process.env.MCP_TOKEN)) {
  process.stderr.write("usage: MCP_URL=… [MCP_TOKEN=…] [AS_ISSUER=…] node ts_client.mjs bearer|oauth|step_up\n");
  process.exit(2);
}

/** A fetch that records "METHOD URL -> STATUS" for every request. */
function recordingFetch(log) {
  return async (input, init) => {
    const res = await fetch(input, init);
    const target = typeof input === "string" ? input : (input.url ?? String(input));
    log.push(`${init?.method ?? "GET"} ${target} -> ${res.status}`);
    return res;
  };
}

function called(result, tool) {
  if (result.isError) throw new Error(`${tool}: tool error: ${JSON.stringify(result).slice(0, 300)}`);
  return result.structuredContent;
}

/** A read:data access token granted earlier to johndoe. */
async function userToken(scope) {
  const issuer = process.env.AS_ISSUER;
  if (!issuer) throw new Error("AS_ISSUER is not set");
  const res = await fetch(`${issuer}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "password",
      username: "johndoe",
      password: "unused",
      client_id: CLIENT_ID,
      scope,
      resource: url,
    }),
  });
  if (!res.ok) throw new Error(`token endpoint: ${res.status} ${await res.text()}`);
  return (await res.json()).access_token;
}

const log = [];
const provider = new AutomatedProvider(log, CLIENT_ID, "TypeScript, gateway");
const transportOptions = () =>
  mode === "bearer"
    ? { requestInit: { headers: { Authorization: `Bearer ${process.env.MCP_TOKEN}` } } }
    : { authProvider: provider, fetch: recordingFetch(log) };

if (mode === "step_up") {
  // Without a refresh token: with one, the SDK refreshes instead of
  // authorizing again, and a refresh cannot widen the scope.
  provider.saveTokens({ access_token: await userToken("read:data"), token_type: "Bearer" });
}
let transport = new StreamableHTTPClientTransport(new URL(url), transportOptions());
let client = new Client({ name: "tower-mcp-auth-gateway-driver-ts", version: "1.0.0" });
try {
  await client.connect(transport);
} catch (e) {
  if (!(mode === "oauth" && e instanceof UnauthorizedError)) throw e;
  await transport.finishAuth(provider.code);
  await transport.close().catch(() => {});
  transport = new StreamableHTTPClientTransport(new URL(url), transportOptions());
  client = new Client({ name: "tower-mcp-auth-gateway-driver-ts", version: "1.0.0" });
  await client.connect(transport);
}
const tools = (await client.listTools()).tools.map((t) => t.name).sort();
const out = { server: client.getServerVersion()?.name, tools };
if (mode === "step_up") {
  const update = () =>
    client.callTool({ name: "update_user_data", arguments: { user_id: "user_001", email: "ts-stepped@example.com" } });
  let updated;
  try {
    updated = await update();
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    await transport.finishAuth(provider.code);
    updated = await update();
  }
  out.update_user_data = called(updated, "update_user_data");
} else {
  out.get_user_data = called(
    await client.callTool({ name: "get_user_data", arguments: { user_id: "user_001" } }),
    "get_user_data",
  );
}
out.echo_headers = called(await client.callTool({ name: "echo_headers", arguments: {} }), "echo_headers");
await client.close();
out.token = mode === "bearer" ? null : (provider.tokens()?.access_token ?? null);
out.authorizations = provider.authorizations;
out.requests = log;
process.stdout.write(JSON.stringify(out) + "\n");
