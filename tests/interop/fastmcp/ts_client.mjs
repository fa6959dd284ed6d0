// The official MCP TypeScript SDK's client (installed by scripts/test in
// tests/interop/node) through the gateway with a bearer token, for
// driver.py:
//
//   MCP_URL=http://127.0.0.1:PORT/mcp MCP_TOKEN=… node ts_client.mjs
//
// It opens a session (initialize), lists the tools, calls get_user_data
// and echo_headers, and prints one JSON line: {"server", "tools",
// "get_user_data", "echo_headers"}. Any failure is an exception: exit
// status 1 with the message on stderr.

import { Client } from "../node/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js";
import { StreamableHTTPClientTransport } from "../node/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js";

const url = process.env.MCP_URL;
const token = process.env.MCP_TOKEN;
if (!url || !token) {
  process.stderr.write("usage: MCP_URL=… MCP_TOKEN=… node ts_client.mjs\n");
  process.exit(2);
}

const client = new Client({ name: "tower-mcp-auth-gateway-driver-ts", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
await client.connect(transport);
const tools = (await client.listTools()).tools.map((t) => t.name).sort();
const data = await client.callTool({ name: "get_user_data", arguments: { user_id: "user_001" } });
const headers = await client.callTool({ name: "echo_headers", arguments: {} });
if (data.isError || headers.isError) {
  throw new Error(`tool error: ${JSON.stringify(data.isError ? data : headers).slice(0, 300)}`);
}
await client.close();
process.stdout.write(
  JSON.stringify({
    server: client.getServerVersion()?.name,
    tools,
    get_user_data: data.structuredContent,
    echo_headers: headers.structuredContent,
  }) + "\n",
);
