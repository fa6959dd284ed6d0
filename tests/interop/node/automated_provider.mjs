// The official MCP TypeScript SDK's OAuthClientProvider with the "browser"
// automated, shared by the interop clients: client.mjs (tests/interop.rs,
// the example server) and ../fastmcp/ts_client.mjs (driver.py, the gateway
// in front of FastMCP).
//
// In memory, with a pre-registered public client. The authorization URL is
// fetched without following the redirect, and the code read from its
// Location; the caller hands `provider.code` to the transport's
// `finishAuth`. Each authorization request's scope, resource and PKCE
// method is kept in `provider.authorizations`.

// Never contacted: the authorization server's redirect is read, not followed.
export const REDIRECT_URL = "http://127.0.0.1:9/callback";

export class AutomatedProvider {
  /**
   * @param {string[]} log where "GET URL -> STATUS" of each authorization request goes
   * @param {string} clientId the client pre-registered at the authorization server
   * @param {string} name shown in the client's metadata
   */
  constructor(log, clientId, name) {
    this.log = log;
    this.clientId = clientId;
    this.name = name;
    this._tokens = undefined;
    this._verifier = undefined;
    this.code = undefined;
    this.authorizations = [];
  }
  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return {
      client_name: `tower-mcp-auth interop (${this.name})`,
      redirect_uris: [REDIRECT_URL],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return { client_id: this.clientId };
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    if (!this._verifier) throw new Error("no code verifier saved");
    return this._verifier;
  }
  async redirectToAuthorization(url) {
    this.authorizations.push({
      scope: url.searchParams.get("scope"),
      resource: url.searchParams.get("resource"),
      code_challenge_method: url.searchParams.get("code_challenge_method"),
    });
    const res = await fetch(url, { redirect: "manual" });
    this.log.push(`GET ${url.origin}${url.pathname} -> ${res.status}`);
    const location = res.headers.get("location");
    if (!location) throw new Error(`authorization endpoint answered ${res.status} without a redirect`);
    const back = new URL(location);
    if (back.searchParams.get("error")) throw new Error(`authorization error: ${back.searchParams.get("error")}`);
    this.code = back.searchParams.get("code");
    if (!this.code) throw new Error("no code in the authorization redirect");
  }
}
