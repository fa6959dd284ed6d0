// mcp-proxy (npm) in front of a Streamable HTTP upstream, for
// scripts/bench-gateway's comparison with mcp-auth-gateway:
//
//   UPSTREAM_URL=http://127.0.0.1:PORT/mcp PORT=8080 [STATELESS=1] node http_upstream.mjs
//
// mcp-proxy's command line only spawns a stdio server (`mcp-proxy -- CMD`;
// its bin builds a StdioClientTransport and nothing else). Its library is
// not tied to stdio: this is the bin's own `proxy()` — one upstream
// `Client`, `startHTTPServer` with a `createServer` that wires each
// downstream connection to it with `proxyServer`, the list_changed bridge —
// with the upstream reached by the SDK's StreamableHTTPClientTransport
// instead. Every option not set here is the bin's default (event store on,
// 10 MiB body limit, 5 min request timeout). It serves Streamable HTTP at
// /mcp only (`--server stream`), on 127.0.0.1:PORT, and prints one JSON line,
// {"url": "http://127.0.0.1:PORT/mcp"}, once listening.

import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Server } from "@modelcontextprotocol/server";
import { getUpstreamBridge, proxyServer, resolveVersionNegotiation, startHTTPServer } from "mcp-proxy";

const upstream = process.env.UPSTREAM_URL;
const port = Number(process.env.PORT ?? 8080);
if (!upstream || !Number.isInteger(port)) {
  process.stderr.write("usage: UPSTREAM_URL=http://… PORT=8080 [STATELESS=1] node http_upstream.mjs\n");
  process.exit(2);
}
const REQUEST_TIMEOUT = 300_000;

const client = new Client(
  { name: "mcp-proxy", version: "1.0.0" },
  { capabilities: {}, versionNegotiation: resolveVersionNegotiation("legacy") },
);
await client.connect(new StreamableHTTPClientTransport(new URL(upstream)), { timeout: 60_000 });

const createServer = async () => {
  const serverCapabilities = client.getServerCapabilities();
  const server = new Server(client.getServerVersion(), {
    capabilities: serverCapabilities,
    instructions: client.getInstructions(),
  });
  await proxyServer({ client, requestTimeout: REQUEST_TIMEOUT, server, serverCapabilities });
  return server;
};

const proxy = await startHTTPServer({
  createServer,
  host: "127.0.0.1",
  port,
  sseEndpoint: null,
  stateless: process.env.STATELESS === "1",
  streamEndpoint: "/mcp",
});
getUpstreamBridge({ client, requestTimeout: REQUEST_TIMEOUT }).subscribe({
  promptsListChanged: () => proxy.notify.promptsChanged(),
  resourcesListChanged: () => proxy.notify.resourcesChanged(),
  resourceUpdated: ({ uri }) => proxy.notify.resourceUpdated(uri),
  toolsListChanged: () => proxy.notify.toolsChanged(),
});
process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${port}/mcp` }) + "\n");

const stop = async () => {
  await proxy.close();
  await client.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
