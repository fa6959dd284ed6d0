// A real OAuth 2 authorization server (oauth2-mock-server) on a loopback
// port, for tower-mcp-auth's interop tests.
//
//   node server.mjs
//
// Environment:
//   RESOURCE       the resource identifier put into `aud` of issued tokens
//   CLIENT_ID      the client allowed to call /introspect
//   CLIENT_SECRET  its secret (client_secret_basic or client_secret_post)
//
// Prints one JSON line, {"issuer": "http://127.0.0.1:PORT"}, once listening,
// and exits when stdin closes (so a test that dies takes the server with it).
//
// Behaviour beyond the package's defaults (all through its documented
// hooks):
//   * beforeTokenSigning: `aud` = RESOURCE (unless the token request names
//     one), `scope` from the request, `sub` and `client_id` = the requesting
//     client for client_credentials.
//   * authorization code and refresh grants: the package signs them with
//     `scope: "dummy"` and `sub: "johndoe"`; here they carry the scope asked
//     for at /authorize (beforeAuthorizeRedirect remembers it per code, and
//     per refresh token after), and `aud` = the RFC 8707 `resource` the client
//     sent (at /token, else at /authorize), else RESOURCE. The id_token is
//     left as the package makes it.
//   * password grant: the package's own (`sub` = the username); the
//     step_up flows take their earlier read:data token this way for johndoe,
//     the user the code grant names, so that a step-up stays with one
//     principal (the server binds each session to the principal that
//     opened it).
//   * beforeResponse: remembers every access token issued; reports the
//     granted scope in the token response.
//   * GET /interop/requests: the /authorize and /token requests seen so far
//     (grant, client_id, scope, resource, whether PKCE was used; never a
//     secret), so a test can check what a client sent.
//   * beforeRevoke (RFC 7009 /revoke): marks the token revoked.
//   * beforeIntrospect (RFC 7662 /introspect): 401 invalid_client unless the
//     caller authenticates as CLIENT_ID / CLIENT_SECRET; `{active:false}` for
//     a token never issued, revoked or expired; otherwise `active:true` with
//     the token's claims.
//
// The package parses only JSON bodies on /introspect and /revoke, so the
// form body (application/x-www-form-urlencoded, as RFC 7662 and RFC 7009
// require) is parsed here before the request reaches it.

import http from "node:http";
import { OAuth2Issuer, OAuth2Service } from "oauth2-mock-server";

const RESOURCE = process.env.RESOURCE ?? "http://127.0.0.1/mcp";
const CLIENT_ID = process.env.CLIENT_ID ?? "resource-server";
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? "resource-server-secret";

const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);

const issued = new Set();
const revoked = new Set();
// code or refresh token -> { scope, resource } granted at /authorize.
const grants = new Map();
// What clients sent to /authorize and /token, for GET /interop/requests.
const seen = [];

function formBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString("utf8")))));
    req.on("error", reject);
  });
}

function basicCredentials(req) {
  const h = req.headers.authorization ?? "";
  const [scheme, value] = h.split(" ");
  if (!value || scheme.toLowerCase() !== "basic") return null;
  const decoded = Buffer.from(value, "base64").toString("utf8");
  const i = decoded.indexOf(":");
  if (i < 0) return null;
  // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
  const dec = (s) => decodeURIComponent(s.replace(/\+/g, " "));
  return { id: dec(decoded.slice(0, i)), secret: dec(decoded.slice(i + 1)) };
}

function clientOf(req) {
  const basic = basicCredentials(req);
  if (basic) return basic;
  const body = req.body ?? {};
  return body.client_id ? { id: body.client_id, secret: body.client_secret } : null;
}

function claimsOf(token) {
  try {
    return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
  } catch {
    return null;
  }
}

function grantOf(body) {
  if (body.grant_type === "authorization_code") return grants.get(body.code);
  if (body.grant_type === "refresh_token") return grants.get(body.refresh_token);
  return undefined;
}

service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const q = req.query ?? {};
  const code = redirect.url.searchParams.get("code");
  seen.push({
    endpoint: "authorize",
    client_id: q.client_id ?? null,
    scope: q.scope ?? null,
    resource: q.resource ?? null,
    pkce: q.code_challenge !== undefined,
  });
  if (code) grants.set(code, { scope: q.scope, resource: q.resource });
});

service.on("beforeTokenSigning", (token, req) => {
  const body = req.body ?? {};
  // The id_token of a code or refresh grant already has `aud` = the client.
  if (body.grant_type !== "client_credentials" && token.payload.aud !== undefined) return;
  const grant = grantOf(body);
  if (body.aud === undefined) token.payload.aud = body.resource ?? grant?.resource ?? RESOURCE;
  if (body.scope !== undefined) token.payload.scope = body.scope;
  else if (grant?.scope !== undefined) token.payload.scope = grant.scope;
  if (grant && body.client_id) token.payload.client_id = body.client_id;
  if (body.grant_type === "client_credentials") {
    const client = clientOf(req);
    if (client) {
      token.payload.sub = client.id;
      token.payload.client_id = client.id;
    }
  }
});

service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  seen.push({
    endpoint: "token",
    grant_type: body.grant_type ?? null,
    client_id: body.client_id ?? null,
    scope: body.scope ?? null,
    resource: body.resource ?? null,
    pkce: body.code_verifier !== undefined,
  });
  if (!response.body || !response.body.access_token) return;
  issued.add(response.body.access_token);
  const grant = grantOf(body);
  if (grant) {
    if (body.scope === undefined && grant.scope !== undefined) response.body.scope = grant.scope;
    if (body.grant_type === "authorization_code") grants.delete(body.code);
  }
  if (response.body.refresh_token) {
    grants.set(response.body.refresh_token, {
      scope: response.body.scope,
      resource: body.resource ?? grant?.resource,
    });
  }
});

service.on("beforeRevoke", (_response, req) => {
  const token = (req.body ?? {}).token;
  if (token) revoked.add(token);
});

service.on("beforeIntrospect", (response, req) => {
  const client = clientOf(req);
  if (!client || client.id !== CLIENT_ID || client.secret !== CLIENT_SECRET) {
    response.statusCode = 401;
    response.body = { error: "invalid_client" };
    return;
  }
  const token = (req.body ?? {}).token;
  const claims = token ? claimsOf(token) : null;
  const now = Math.floor(Date.now() / 1000);
  if (!token || !issued.has(token) || revoked.has(token) || !claims || claims.exp <= now) {
    response.body = { active: false };
    return;
  }
  response.body = { active: true, token_type: "Bearer", ...claims };
});

const server = http.createServer(async (req, res) => {
  const path = (req.url ?? "").split("?")[0];
  if (req.method === "GET" && path === "/interop/requests") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(seen));
    return;
  }
  if (req.method === "POST" && (path === "/introspect" || path === "/revoke")) {
    const type = req.headers["content-type"] ?? "";
    if (type.startsWith("application/x-www-form-urlencoded")) {
      req.body = await formBody(req);
    }
  }
  service.requestHandler(req, res);
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  issuer.url = `http://127.0.0.1:${port}`;
  process.stdout.write(JSON.stringify({ issuer: issuer.url }) + "\n");
});

process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
