// The official MCP everything server over Streamable HTTP, on loopback only:
//
//   node serve.mjs PORT
//
// Its own launcher (`PORT=N node dist/index.js streamableHttp`) listens on
// every interface; the tests and scripts/conformance must not open a port
// to the network, so this wrapper gives the listen call the loopback host
// before it loads the server's transport module unchanged.

import net from "node:net";

const port = process.argv[2];
if (!/^\d+$/.test(port ?? "")) {
  process.stderr.write("usage: node serve.mjs PORT\n");
  process.exit(2);
}
process.env.PORT = port;

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  // express's app.listen(PORT, callback): a port and no host.
  if (typeof args[0] !== "object" && (args.length === 1 || typeof args[1] === "function")) {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};

await import("@modelcontextprotocol/server-everything/dist/transports/streamableHttp.js");
