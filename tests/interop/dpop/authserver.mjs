// A real OAuth 2 / OpenID authorization server, oidc-provider, on a loopback
// port, issuing DPoP-bound JWT access tokens (RFC 9449, RFC 9068) for
// tower-mcp-auth's DPoP interop test.
//
//   node authserver.mjs
//
// Environment:
//   RESOURCES      the resource identifiers (comma separated) it issues
//                  JWT access tokens for: each token's `aud` is the one the
//                  client names in `resource` (RFC 8707)
//   OPAQUE_RESOURCES
//                  the same, for opaque access tokens (checked by RFC 7662
//                  introspection)
//   SCOPES         the scopes those resources accept (space separated)
//   CLIENT_ID, CLIENT_SECRET
//                  a confidential client whose tokens must be DPoP-bound
//                  (`dpop_bound_access_tokens`), client_credentials grant
//   BEARER_CLIENT_ID, BEARER_CLIENT_SECRET
//                  the same without that requirement: it gets plain bearer
//                  tokens when it sends no proof
//   RS_CLIENT_ID, RS_CLIENT_SECRET
//                  the resource server's client, the one allowed to call
//                  the introspection endpoint (/token/introspection)
//
// Prints one JSON line, {"issuer": "http://127.0.0.1:PORT"}, once listening,
// and exits when stdin closes (so a test that dies takes the server with it).
//
// Everything below is oidc-provider's own configuration: the `dPoP`
// feature with server nonces required at the token endpoint (RFC 9449 §8),
// `resourceIndicators` answering each resource with `accessTokenFormat:
// 'jwt'` (so the access token is an RFC 9068 JWT, `typ: at+jwt`, carrying
// `cnf.jkt`; opaque for OPAQUE_RESOURCES), `clientCredentials`,
// `introspection` (its answer carries `cnf.jkt` and `token_type: DPoP` for
// a bound token), an ES256 signing key generated at start (published at its
// JWKS, found through discovery), its in-memory store (it warns about that on
// stderr: right for a test). One addition: GET /interop/requests
// lists the token and introspection requests it answered (whether a DPoP
// proof came with it, the status, the error code, whether an introspected
// token was active and bound; never a secret or a token), so the test can
// check what the client library and the resource server sent.

import crypto from "node:crypto";
import http from "node:http";
import Provider, { errors } from "oidc-provider";

const RESOURCES = (process.env.RESOURCES ?? "http://127.0.0.1/mcp").split(",").filter(Boolean);
const OPAQUE_RESOURCES = (process.env.OPAQUE_RESOURCES ?? "").split(",").filter(Boolean);
const SCOPES = process.env.SCOPES ?? "read:data";
const CLIENT_ID = process.env.CLIENT_ID ?? "dpop-client";
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? "dpop-client-secret";
const BEARER_CLIENT_ID = process.env.BEARER_CLIENT_ID ?? "bearer-client";
const BEARER_CLIENT_SECRET = process.env.BEARER_CLIENT_SECRET ?? "bearer-client-secret";
const RS_CLIENT_ID = process.env.RS_CLIENT_ID ?? "resource-server";
const RS_CLIENT_SECRET = process.env.RS_CLIENT_SECRET ?? "resource-server-secret";

const { privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
const signingKey = { ...privateKey.export({ format: "jwk" }), alg: "ES256", use: "sig", kid: "interop-es256" };

const client = (client_id, client_secret, bound) => ({
  client_id,
  client_secret,
  grant_types: ["client_credentials"],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: "client_secret_basic",
  // The only signing key is ES256 (no ID token is issued here anyway).
  id_token_signed_response_alg: "ES256",
  scope: SCOPES,
  dpop_bound_access_tokens: bound,
});

// The token requests answered, for GET /interop/requests.
const seen = [];

const server = http.createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    client(CLIENT_ID, CLIENT_SECRET, true),
    client(BEARER_CLIENT_ID, BEARER_CLIENT_SECRET, false),
    client(RS_CLIENT_ID, RS_CLIENT_SECRET, false),
  ],
  jwks: { keys: [signingKey] },
  scopes: SCOPES.split(" "),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // The resource server may introspect every token; a client its own.
      allowedPolicy: (_ctx, caller, token) => caller.clientId === RS_CLIENT_ID || caller.clientId === token.clientId,
    },
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => true,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        const opaque = OPAQUE_RESOURCES.includes(resource);
        if (!opaque && !RESOURCES.includes(resource)) throw new errors.InvalidTarget();
        return {
          scope: SCOPES,
          audience: resource,
          accessTokenFormat: opaque ? "opaque" : "jwt",
          accessTokenTTL: 600,
          jwt: { sign: { alg: "ES256" } },
        };
      },
    },
  },
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.method === "POST" && ctx.path === "/token") {
    const body = typeof ctx.body === "object" && ctx.body !== null ? ctx.body : {};
    seen.push({
      endpoint: "token",
      status: ctx.status,
      dpop_proof: ctx.get("dpop") !== "",
      dpop_nonce_sent: ctx.response.get("dpop-nonce") !== "",
      error: body.error ?? null,
      token_type: body.token_type ?? null,
    });
  }
  if (ctx.method === "POST" && ctx.path === "/token/introspection") {
    const body = typeof ctx.body === "object" && ctx.body !== null ? ctx.body : {};
    seen.push({
      endpoint: "introspection",
      status: ctx.status,
      active: body.active ?? null,
      token_type: body.token_type ?? null,
      jkt: typeof body.cnf?.jkt === "string",
    });
  }
});

const callback = provider.callback();
server.on("request", (req, res) => {
  if (req.method === "GET" && req.url === "/interop/requests") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(seen));
    return;
  }
  callback(req, res);
});

process.stdout.write(JSON.stringify({ issuer }) + "\n");

process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
