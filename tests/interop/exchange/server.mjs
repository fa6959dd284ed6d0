// A real authorization server, oidc-provider, with an RFC 8693 token
// exchange grant registered through its extension-grant API
// (`provider.registerGrantType`), on a loopback port, for
// tower-mcp-auth's token exchange interop test (tests/exchange_interop.rs).
//
//   npm ci --prefix tests/interop/exchange && node tests/interop/exchange/server.mjs
//
// Environment:
//   MCP_RESOURCE    the MCP server's resource identifier (callers' tokens)
//   USERS_RESOURCE  the downstream API's resource identifier
//
// Prints one JSON line, {"issuer": "http://127.0.0.1:PORT"}, once
// listening, and exits when stdin closes.
//
// Clients (client_secret_basic or client_secret_post):
//   caller-app / caller-secret   client_credentials: the caller's token for
//                                MCP_RESOURCE (scope read:data)
//   mcp-server / mcp-secret      the token exchange grant, and
//                                client_credentials for its own actor token
//
// Both resources get RS256 JWT access tokens (`aud` = the resource). The
// exchange: subject_token must be an access token this server issued for
// MCP_RESOURCE (signature, issuer, audience, expiry checked); resource must
// be USERS_RESOURCE (else invalid_target); scope within users:read (else
// invalid_scope); an actor_token, when sent, must be one of this server's
// access tokens too, and its `sub` becomes the issued token's `act.sub`
// (RFC 8693 §4.1). The issued token's `sub` is the subject token's.

import http from "node:http";
import { Provider, errors } from "oidc-provider";
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from "jose";

const MCP_RESOURCE = process.env.MCP_RESOURCE ?? "http://127.0.0.1/mcp";
const USERS_RESOURCE = process.env.USERS_RESOURCE ?? "https://users.example.com";
const GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS = "urn:ietf:params:oauth:token-type:access_token";

const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
const privateJwk = { ...(await exportJWK(privateKey)), kid: "k1", alg: "RS256", use: "sig" };
const publicJwks = createLocalJWKSet({
  keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" }],
});

const server = http.createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const resourceServers = {
  [MCP_RESOURCE]: { scope: "read:data", ttl: 600 },
  [USERS_RESOURCE]: { scope: "users:read", ttl: 300 },
};

const provider = new Provider(issuer, {
  jwks: { keys: [privateJwk] },
  clients: [
    {
      client_id: "caller-app",
      client_secret: "caller-secret",
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      scope: "read:data",
    },
    {
      client_id: "mcp-server",
      client_secret: "mcp-secret",
      grant_types: ["client_credentials", GRANT],
      response_types: [],
      redirect_uris: [],
      scope: "read:data users:read",
    },
  ],
  scopes: ["read:data", "users:read"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => MCP_RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, resource) {
        const rs = resourceServers[resource];
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: rs.scope,
          audience: resource,
          accessTokenTTL: rs.ttl,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        };
      },
    },
  },
  // The delegation the exchange handler decided, into the issued JWT.
  extraTokenClaims(ctx) {
    return ctx?.exchangeAct ? { act: ctx.exchangeAct } : undefined;
  },
});

/// One of this server's access tokens, for `audience` when given.
async function verified(token, audience) {
  const { payload } = await jwtVerify(token, publicJwks, {
    issuer,
    ...(audience ? { audience } : {}),
  });
  return payload;
}

const asList = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

async function tokenExchange(ctx) {
  const p = ctx.oidc.params;
  if (p.subject_token_type !== ACCESS) {
    throw new errors.InvalidRequest("subject_token_type must be an access token");
  }
  let subject;
  try {
    subject = await verified(p.subject_token, MCP_RESOURCE);
  } catch {
    throw new errors.InvalidGrant("the subject_token is not a valid access token for the MCP server");
  }
  const resources = asList(p.resource);
  if (resources.length !== 1 || resources[0] !== USERS_RESOURCE) {
    throw new errors.InvalidTarget("tokens are exchanged for the users API only");
  }
  const rs = resourceServers[USERS_RESOURCE];
  const allowed = new Set(rs.scope.split(" "));
  const asked = (p.scope ?? "").split(" ").filter(Boolean);
  if (asked.some((s) => !allowed.has(s))) {
    throw new errors.InvalidScope("a requested scope is not allowed", p.scope);
  }
  if (p.actor_token !== undefined) {
    if (p.actor_token_type !== ACCESS) {
      throw new errors.InvalidRequest("actor_token_type must be an access token");
    }
    try {
      const actor = await verified(p.actor_token);
      ctx.exchangeAct = { sub: actor.sub };
    } catch {
      throw new errors.InvalidGrant("the actor_token is not valid");
    }
  }
  const token = new provider.AccessToken({
    accountId: subject.sub,
    client: ctx.oidc.client,
    gty: "token_exchange",
    scope: (asked.length ? asked : [...allowed]).join(" "),
  });
  token.resourceServer = {
    identifier: () => USERS_RESOURCE,
    scope: rs.scope,
    audience: USERS_RESOURCE,
    accessTokenTTL: rs.ttl,
    accessTokenFormat: "jwt",
    jwt: { sign: { alg: "RS256" } },
  };
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS,
    token_type: "Bearer",
    expires_in: token.expiration,
    scope: token.scope,
  };
}

provider.registerGrantType(
  GRANT,
  tokenExchange,
  ["subject_token", "subject_token_type", "actor_token", "actor_token_type",
   "requested_token_type", "resource", "audience", "scope"],
  ["resource", "audience"],
);

server.on("request", provider.callback());
process.stdout.write(JSON.stringify({ issuer }) + "\n");
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
