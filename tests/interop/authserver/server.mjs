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
//   * beforeResponse: remembers every access token issued.
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

service.on("beforeTokenSigning", (token, req) => {
  const body = req.body ?? {};
  if (body.aud === undefined) token.payload.aud = RESOURCE;
  if (body.scope !== undefined) token.payload.scope = body.scope;
  if (body.grant_type === "client_credentials") {
    const client = clientOf(req);
    if (client) {
      token.payload.sub = client.id;
      token.payload.client_id = client.id;
    }
  }
});

service.on("beforeResponse", (response) => {
  if (response.body && response.body.access_token) issued.add(response.body.access_token);
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
