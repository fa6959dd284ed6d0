// DPoP interop client for tower-mcp-auth (tests/interop_dpop.rs): the
// client library openid-client (on oauth4webapi) holds the DPoP key, gets
// a DPoP-bound access token from the authorization server (authserver.mjs,
// oidc-provider) and signs a fresh proof for every request the official MCP
// TypeScript SDK makes (its StreamableHTTPClientTransport with a `fetch`
// that is openid-client's fetchProtectedResource). Nothing DPoP is written
// here: keys, proofs, `ath`, nonces and the nonce retry are the library's.
//
//   node client.mjs FLOW...
//
// FLOW is one of:
//   dpop              token with DPoP (the AS demands a nonce first), then
//                     initialize, tools/list, tools/call get_user_data, each
//                     request with its own proof
//   nonce             the same against the server with nonces on: its first
//                     answer is 401 use_dpop_nonce with DPoP-Nonce, the
//                     library retries with the nonce, the call succeeds
//   bearer_downgrade  the DPoP-bound token sent as `Bearer` (no proof) is
//                     refused; with its proof it is accepted
//   wrong_htu         a proof the library made for another URL of the same
//                     server is refused; one for the endpoint is accepted
//   replay            the same request, proof and all, sent twice: the
//                     second is refused
//   dpop_required     an unbound bearer token is accepted by the default
//                     server and refused by the one with DPOP_REQUIRED=1
//   introspection     an opaque DPoP-bound token, checked by the server
//                     through RFC 7662 introspection (`cnf.jkt` in the
//                     answer): the same session as `dpop`, and the token
//                     sent as `Bearer` refused
//
// Each flow prints ONE JSON line on stdout and the process exits 0 (a
// failing flow is a result, not a crash):
//
//   {"client":"openid-client","flow":"dpop","result":"pass"|"fail","details":{...}}
//
// Environment:
//   AS_ISSUER                  the authorization server (discovery)
//   CLIENT_ID, CLIENT_SECRET   a client whose tokens the AS DPoP-binds
//   BEARER_CLIENT_ID, BEARER_CLIENT_SECRET
//                              a client that gets unbound bearer tokens
//   MCP_URL                    the MCP endpoint of the default server
//   MCP_STRICT_URL             the MCP endpoint of the server with
//                              nonces on and DPoP required
//   MCP_OPAQUE_URL             the MCP endpoint of the server that
//                              introspects opaque tokens

import { AsyncLocalStorage } from "node:async_hooks";
import * as oidc from "openid-client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const CLIENT = "openid-client";
const SCOPE = "read:data";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

function emit(flow, result, details) {
  process.stdout.write(JSON.stringify({ client: CLIENT, flow, result, details }) + "\n");
}

function claims(jwt) {
  try {
    return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
  } catch {
    return null;
  }
}

/**
 * The `error` of a WWW-Authenticate value: the DPoP challenge's when there
 * is one (it may follow a Bearer challenge), else the first.
 */
function challengeError(header) {
  const value = header ?? "";
  const dpop = /(?:^|,)\s*DPoP\s+(.*)$/is.exec(value)?.[1] ?? value;
  return /error="([^"]*)"/.exec(dpop)?.[1] ?? /error="([^"]*)"/.exec(value)?.[1] ?? null;
}

// The AbortSignal of the MCP SDK's request in flight (openid-client passes
// a timeout signal of its own to the fetch below, not the SDK's).
const sdkSignal = new AsyncLocalStorage();

/**
 * Discovery at AS_ISSUER (http on loopback: allowed explicitly), with a
 * fetch that records every exchange, token requests and MCP requests alike:
 * method, URL, the `Authorization` scheme, the proof's claims, the status,
 * the challenge's `error` and any `DPoP-Nonce` answered.
 */
async function configure(clientId, secret, log, route = (url) => url) {
  const config = await oidc.discovery(
    new URL(need("AS_ISSUER")),
    clientId,
    undefined,
    oidc.ClientSecretBasic(secret),
    { execute: [oidc.allowInsecureRequests] },
  );
  config[oidc.customFetch] = async (url, options) => {
    const headers = new Headers(options.headers);
    const proof = headers.get("dpop");
    const signal = sdkSignal.getStore();
    const res = await fetch(route(url), {
      ...options,
      signal: signal ? AbortSignal.any([options.signal, signal].filter(Boolean)) : options.signal,
    });
    let error = challengeError(res.headers.get("www-authenticate"));
    if (!error && res.status === 400 && (res.headers.get("content-type") ?? "").includes("json")) {
      error = (await res.clone().json().catch(() => ({}))).error ?? null;
    }
    log.push({
      method: options.method,
      url: String(url),
      sent_to: String(route(url)),
      scheme: (headers.get("authorization") ?? "").split(" ")[0] || null,
      proof: proof ? claims(proof) : null,
      status: res.status,
      error,
      www_authenticate: res.headers.get("www-authenticate"),
      dpop_nonce: res.headers.get("dpop-nonce"),
    });
    return res;
  };
  return config;
}

/** A DPoP key, and a client_credentials token bound to it for `resource`. */
async function boundToken(config, resource) {
  const keyPair = await oidc.randomDPoPKeyPair("ES256");
  const DPoP = oidc.getDPoPHandle(config, keyPair);
  const tokens = await oidc.clientCredentialsGrant(config, { scope: SCOPE, resource }, { DPoP });
  const token = tokens.access_token;
  const payload = claims(token) ?? {};
  const jkt = await DPoP.calculateThumbprint();
  return {
    DPoP,
    token,
    facts: {
      token_type: tokens.token_type,
      aud: payload.aud ?? null,
      scope: payload.scope ?? null,
      bound_to_key: payload.cnf?.jkt === jkt,
    },
  };
}

/** An unbound bearer token (no proof at the token endpoint). */
async function bearerToken(config, resource) {
  const tokens = await oidc.clientCredentialsGrant(config, { scope: SCOPE, resource });
  return { token: tokens.access_token, cnf: claims(tokens.access_token)?.cnf ?? null };
}

/** The MCP SDK's fetch: every request through the library, with a proof. */
function dpopFetch(config, token, DPoP) {
  return (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init.headers);
    return sdkSignal.run(init.signal, () =>
      oidc.fetchProtectedResource(config, token, url, init.method ?? "GET", init.body, headers, { DPoP }),
    );
  };
}

/** initialize, tools/list and tools/call get_user_data through the MCP SDK. */
async function mcpSession(url, config, token, DPoP) {
  const client = new Client({ name: "tower-mcp-auth-interop-dpop", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: dpopFetch(config, token, DPoP) });
  await client.connect(transport);
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name);
    const result = await client.callTool({ name: "get_user_data", arguments: { user_id: "user_001" } });
    if (result.isError) {
      throw new Error(`get_user_data: ${(result.content ?? []).map((c) => c.text ?? "").join(" ")}`);
    }
    return { tools, user: result.structuredContent?.id ?? null };
  } finally {
    await client.close();
  }
}

/** An MCP exchange that went through (a GET stream the server does not offer is 405). */
function accepted(e) {
  return e.status < 300 || (e.method === "GET" && e.status === 405);
}

/** The exchanges with `url` (the MCP endpoint), in order. */
function exchangesWith(log, url) {
  return log.filter((e) => e.sent_to === url);
}

/** Every MCP request carried `DPoP` and its own proof for its method and URL. */
function proofsFresh(exchanges, url) {
  const jtis = new Set(exchanges.map((e) => e.proof?.jti));
  return (
    exchanges.length > 0 &&
    jtis.size === exchanges.length &&
    exchanges.every(
      (e) => e.scheme === "DPoP" && e.proof && e.proof.htm === e.method && e.proof.htu === url && e.proof.ath,
    )
  );
}

/** The token endpoint asked for a nonce and the library came back with it. */
function asNonceRoundTrip(log) {
  const token = log.filter((e) => e.url.endsWith("/token"));
  const i = token.findIndex((e) => e.status === 400 && e.error === "use_dpop_nonce" && e.dpop_nonce);
  return i >= 0 && token[i + 1]?.status === 200 && token[i + 1].proof?.nonce === token[i].dpop_nonce;
}

const INIT_BODY = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-11-25",
    capabilities: {},
    clientInfo: { name: "tower-mcp-auth-interop-dpop", version: "1.0.0" },
  },
});
const INIT_HEADERS = () =>
  new Headers({ "content-type": "application/json", accept: "application/json, text/event-stream" });

/** A plain-fetch initialize with `headers` added: its status and challenge. */
async function rawInitialize(url, headers) {
  const all = INIT_HEADERS();
  for (const [k, v] of Object.entries(headers)) all.set(k, v);
  const res = await fetch(url, { method: "POST", headers: all, body: INIT_BODY });
  await res.body?.cancel();
  const www = res.headers.get("www-authenticate");
  return { status: res.status, error: challengeError(www), www_authenticate: www };
}

/**
 * An initialize through the library (proof for `url`, as the library makes
 * it); the response whatever its status.
 */
async function libraryInitialize(config, token, DPoP, url) {
  try {
    const res = await oidc.fetchProtectedResource(config, token, new URL(url), "POST", INIT_BODY, INIT_HEADERS(), {
      DPoP,
    });
    await res.body?.cancel();
    return { status: res.status, error: null };
  } catch (e) {
    // openid-client throws on a response carrying a challenge.
    const www = e.response?.headers?.get("www-authenticate") ?? null;
    return {
      status: e.response?.status ?? e.status ?? null,
      error: challengeError(www) ?? e.error ?? e.code ?? String(e),
      www_authenticate: www,
    };
  }
}

// ──────────────────────────────── flows ────────────────────────────────

async function dpop() {
  const url = need("MCP_URL");
  const log = [];
  const config = await configure(need("CLIENT_ID"), need("CLIENT_SECRET"), log);
  const { DPoP, token, facts } = await boundToken(config, url);
  const session = await mcpSession(url, config, token, DPoP);
  const mcp = exchangesWith(log, url);
  const details = {
    ...facts,
    as_nonce_round_trip: asNonceRoundTrip(log),
    mcp_requests: mcp.map((e) => `${e.method} ${e.status}`),
    fresh_proofs: proofsFresh(mcp, url),
    tools: session.tools.length,
    user: session.user,
  };
  const ok =
    facts.token_type === "dpop" &&
    facts.aud === url &&
    facts.bound_to_key &&
    details.as_nonce_round_trip &&
    details.fresh_proofs &&
    mcp.every(accepted) &&
    session.tools.includes("get_user_data") &&
    session.user === "user_001";
  return { ok, details };
}

async function nonce() {
  const url = need("MCP_STRICT_URL");
  const log = [];
  const config = await configure(need("CLIENT_ID"), need("CLIENT_SECRET"), log);
  const { DPoP, token, facts } = await boundToken(config, url);
  const session = await mcpSession(url, config, token, DPoP);
  const mcp = exchangesWith(log, url);
  const first = mcp[0];
  const retried = mcp[1];
  const details = {
    ...facts,
    mcp_requests: mcp.map((e) => `${e.method} ${e.status}${e.error ? ` ${e.error}` : ""}`),
    first_challenge: first ? { status: first.status, error: first.error, dpop_nonce: Boolean(first.dpop_nonce) } : null,
    retried_with_nonce: Boolean(first?.dpop_nonce) && retried?.proof?.nonce === first.dpop_nonce,
    every_later_proof_has_a_nonce: mcp.slice(1).every((e) => typeof e.proof?.nonce === "string"),
    fresh_proofs: proofsFresh(mcp, url),
    user: session.user,
  };
  const ok =
    facts.bound_to_key &&
    first?.status === 401 &&
    first.error === "use_dpop_nonce" &&
    details.retried_with_nonce &&
    accepted(retried) &&
    details.every_later_proof_has_a_nonce &&
    details.fresh_proofs &&
    mcp.slice(1).every(accepted) &&
    session.user === "user_001";
  return { ok, details };
}

async function bearerDowngrade() {
  const url = need("MCP_URL");
  const config = await configure(need("CLIENT_ID"), need("CLIENT_SECRET"), []);
  const { DPoP, token, facts } = await boundToken(config, url);
  const asBearer = await rawInitialize(url, { authorization: `Bearer ${token}` });
  const withProof = await libraryInitialize(config, token, DPoP, url);
  const ok =
    facts.bound_to_key && asBearer.status === 401 && asBearer.error === "invalid_token" && withProof.status === 200;
  return { ok, details: { as_bearer: asBearer, with_proof: withProof } };
}

async function wrongHtu() {
  const url = need("MCP_URL");
  const elsewhere = new URL("/elsewhere", url).href;
  const log = [];
  // The library signs a proof for `elsewhere`; the request goes to the
  // MCP endpoint (the proof a thief would replay at another URL).
  const config = await configure(need("CLIENT_ID"), need("CLIENT_SECRET"), log, (u) =>
    String(u) === elsewhere ? url : u,
  );
  const { DPoP, token } = await boundToken(config, url);
  const misdirected = await libraryInitialize(config, token, DPoP, elsewhere);
  const right = await libraryInitialize(config, token, DPoP, url);
  const sent = exchangesWith(log, url).map((e) => ({ htu: e.proof?.htu, status: e.status, error: e.error }));
  const ok =
    sent[0]?.htu === elsewhere &&
    misdirected.status === 401 &&
    misdirected.error === "invalid_dpop_proof" &&
    right.status === 200;
  return { ok, details: { proof_for_another_url: misdirected, proof_for_the_endpoint: right, sent } };
}

async function replay() {
  const url = need("MCP_URL");
  const config = await configure(need("CLIENT_ID"), need("CLIENT_SECRET"), []);
  const { DPoP, token } = await boundToken(config, url);
  const proof = await proofOf(config, token, DPoP, url);
  const headers = { authorization: `DPoP ${token}`, dpop: proof ?? "" };
  const once = await rawInitialize(url, headers);
  const again = await rawInitialize(url, headers);
  const ok = proof !== null && once.status === 200 && again.status === 401 && again.error === "invalid_dpop_proof";
  return { ok, details: { proof_sent_once: once, same_proof_again: again } };
}

/**
 * The proof the library signs for an initialize (POST `url` with `token`),
 * captured instead of sent (its fetch is replaced for this one call).
 */
async function proofOf(config, token, DPoP, url) {
  const saved = config[oidc.customFetch];
  let proof = null;
  config[oidc.customFetch] = async (_url, options) => {
    proof = new Headers(options.headers).get("dpop");
    return new Response(null, { status: 204 });
  };
  try {
    await oidc.fetchProtectedResource(config, token, new URL(url), "POST", INIT_BODY, INIT_HEADERS(), { DPoP });
  } finally {
    config[oidc.customFetch] = saved;
  }
  return proof;
}

async function dpopRequired() {
  const url = need("MCP_URL");
  const strict = need("MCP_STRICT_URL");
  const config = await configure(need("BEARER_CLIENT_ID"), need("BEARER_CLIENT_SECRET"), []);
  const relaxed = await bearerToken(config, url);
  const required = await bearerToken(config, strict);
  const allowed = await rawInitialize(url, { authorization: `Bearer ${relaxed.token}` });
  const refused = await rawInitialize(strict, { authorization: `Bearer ${required.token}` });
  const ok =
    relaxed.cnf === null &&
    required.cnf === null &&
    allowed.status === 200 &&
    refused.status === 401 &&
    refused.error === "invalid_token";
  return { ok, details: { unbound_default_server: allowed, unbound_dpop_required: refused } };
}

async function introspection() {
  const url = need("MCP_OPAQUE_URL");
  const log = [];
  const config = await configure(need("CLIENT_ID"), need("CLIENT_SECRET"), log);
  const { DPoP, token, facts } = await boundToken(config, url);
  const session = await mcpSession(url, config, token, DPoP);
  const mcp = exchangesWith(log, url);
  const asBearer = await rawInitialize(url, { authorization: `Bearer ${token}` });
  const details = {
    token_type: facts.token_type,
    opaque: claims(token) === null,
    mcp_requests: mcp.map((e) => `${e.method} ${e.status}`),
    fresh_proofs: proofsFresh(mcp, url),
    user: session.user,
    as_bearer: asBearer,
  };
  const ok =
    facts.token_type === "dpop" &&
    details.opaque &&
    details.fresh_proofs &&
    mcp.every(accepted) &&
    session.user === "user_001" &&
    asBearer.status === 401 &&
    asBearer.error === "invalid_token";
  return { ok, details };
}

const FLOWS = {
  dpop,
  nonce,
  bearer_downgrade: bearerDowngrade,
  wrong_htu: wrongHtu,
  replay,
  dpop_required: dpopRequired,
  introspection,
};

for (const flow of process.argv.slice(2)) {
  const run = FLOWS[flow];
  if (!run) {
    emit(flow, "fail", { error: `unknown flow ${flow}` });
    continue;
  }
  try {
    const { ok, details } = await run();
    emit(flow, ok ? "pass" : "fail", details);
  } catch (e) {
    emit(flow, "fail", {
      error: String(e?.message ?? e),
      code: e?.code ?? null,
      status: e?.status ?? null,
      www_authenticate: e?.response?.headers?.get("www-authenticate") ?? null,
      cause: e?.cause === undefined ? null : JSON.parse(JSON.stringify(e.cause, (_k, v) => (v instanceof Error ? String(v) : v)) ?? "null"),
    });
  }
}
// The SDK's GET stream may still hold a socket open.
process.exit(0);
