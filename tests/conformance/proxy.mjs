// A loopback reverse proxy that adds the API key the MCP conformance suite
// cannot send, for scripts/conformance. The same program stands in front of
// the bare service and of the example server, so both see the same requests.
//
//   PROXY_API_KEY=KEY node proxy.mjs LISTEN_PORT UPSTREAM_PORT [LOG_FILE]
//
// (The key comes from the environment, not the command line, which any
// local user can read.)
//
// It listens on 127.0.0.1:LISTEN_PORT and forwards every request, streamed
// both ways (SSE included), to 127.0.0.1:UPSTREAM_PORT with the same method,
// path, headers (Host and Origin untouched: the servers' PUBLIC_URL is the
// proxy's URL, so their DNS-rebinding checks judge what the suite sent) and
// body, plus `X-API-Key: KEY`. It prints "ready" on stdout once
// listening.
//
// With LOG_FILE, each exchange is appended as one JSON line: the request
// (method, path, Mcp-* / Accept / Content-Type / Host / Origin headers, body)
// and the answer (status, Content-Type, body), bodies cut at 4 KiB. The
// script replays a scenario with logging to print the requests behind a
// difference.

import http from "node:http";
import fs from "node:fs";

const [listenPort, upstreamPort, logFile] = process.argv.slice(2);
const apiKey = process.env.PROXY_API_KEY;
if (!listenPort || !upstreamPort || !apiKey) {
  process.stderr.write("usage: PROXY_API_KEY=KEY node proxy.mjs LISTEN_PORT UPSTREAM_PORT [LOG_FILE]\n");
  process.exit(2);
}

const BODY_LOG_LIMIT = 4096;
const LOGGED_HEADERS = ["host", "origin", "accept", "content-type", "mcp-method", "mcp-name", "mcp-session-id", "mcp-protocol-version", "last-event-id"];
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
let sequence = 0;

// A body collector that keeps the first BODY_LOG_LIMIT bytes.
function capped() {
  const chunks = [];
  let size = 0;
  let cut = false;
  return {
    push(chunk) {
      if (size >= BODY_LOG_LIMIT) {
        cut = true;
        return;
      }
      const part = chunk.subarray(0, BODY_LOG_LIMIT - size);
      if (part.length < chunk.length) cut = true;
      chunks.push(part);
      size += part.length;
    },
    text() {
      return Buffer.concat(chunks).toString("utf8") + (cut ? "…[cut]" : "");
    },
  };
}

function log(entry) {
  if (logFile) fs.appendFileSync(logFile, JSON.stringify(entry) + "\n");
}

const server = http.createServer((req, res) => {
  const n = ++sequence;
  const headers = { ...req.headers, "x-api-key": apiKey };
  const requestBody = capped();
  const answerBody = capped();
  const request = { method: req.method, path: req.url, headers: {} };
  for (const name of LOGGED_HEADERS) {
    if (req.headers[name] !== undefined) request.headers[name] = req.headers[name];
  }
  let status = null;
  let answerType = null;
  let logged = false;
  const finish = (error) => {
    if (logged) return;
    logged = true;
    log({ n, request: { ...request, body: requestBody.text() }, answer: { status, contentType: answerType, body: answerBody.text(), error } });
  };

  const upstream = http.request(
    { host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers, agent },
    (up) => {
      status = up.statusCode;
      answerType = up.headers["content-type"] ?? null;
      res.writeHead(up.statusCode, up.rawHeaders);
      up.on("data", (chunk) => answerBody.push(chunk));
      up.on("end", () => finish());
      up.on("error", (e) => finish(String(e)));
      up.pipe(res);
    },
  );
  upstream.on("error", (e) => {
    finish(String(e));
    if (!res.headersSent) {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`proxy: upstream error: ${e.message}\n`);
    } else {
      res.destroy();
    }
  });
  // The client went away (an SSE stream closed): close the upstream side.
  res.on("close", () => {
    if (res.writableFinished) return;
    finish("client closed");
    upstream.destroy();
  });
  req.on("data", (chunk) => requestBody.push(chunk));
  req.pipe(upstream);
});

server.keepAliveTimeout = 5000;
server.listen(Number(listenPort), "127.0.0.1", () => process.stdout.write("ready\n"));
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
