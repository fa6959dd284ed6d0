# Shared by scripts/bench-e2e and scripts/ablate-e2e (sourced, not run):
# building the servers, starting them on free loopback ports, the wrk
# script of the 1 KiB `tools/call`, and cleaning up on exit.
#
# After sourcing: $TMP (removed on exit, with every server started by
# `start_server` killed), `built` and `exe`, `start_server`, `hs256_token`
# and `$TMP/call.lua`.

# built CARGO_BUILD_ARGS...: builds, then prints "target-name executable"
# for each executable cargo produced (so CARGO_TARGET_DIR is honoured);
# keep its output in $ARTIFACTS for `exe`.
built() {
    cargo build "$@" --message-format=json-render-diagnostics | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])'
}
exe() { awk -v n="$1" '$1 == n { print $2 }' <<<"$ARTIFACTS"; }

TMP=$(mktemp -d)
cleanup() {
    # `start_server` runs in a command substitution (a subshell), so the
    # server pids are kept in files rather than in a variable.
    for f in "$TMP"/*.pid; do
        [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# start_server NAME BINARY [VAR=value...]: runs BINARY (a name `exe` knows)
# with the example's environment for a stateless server on a free
# loopback port, plus the given variables, prefixed by ${SERVER_PREFIX[@]};
# prints its port once it accepts connections.
start_server() {
    local name=$1 bin=$2 port
    shift 2
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    env BIND="127.0.0.1:$port" PUBLIC_URL="http://127.0.0.1:$port/mcp" MCP_STATELESS=1 \
        RATE_LIMIT_PER_MINUTE=4000000000 RUST_LOG=warn "$@" \
        ${SERVER_PREFIX[@]+"${SERVER_PREFIX[@]}"} "$(exe "$bin")" >"$TMP/$name.log" 2>&1 &
    echo $! >"$TMP/$name.pid"
    # START_TRIES tenths of a second (a server under valgrind starts slowly).
    for _ in $(seq "${START_TRIES:-100}"); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
            echo "$port"; return
        fi
        sleep 0.1
    done
    echo "$name did not start:" >&2; cat "$TMP/$name.log" >&2; exit 1
}

# hs256_token SECRET AUDIENCE: an HS256 access token for a server whose
# JWT_SECRET is SECRET and PUBLIC_URL is AUDIENCE, valid for an hour.
hs256_token() {
    python3 - "$1" "$2" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
secret, aud = sys.argv[1], sys.argv[2]
now = int(time.time())
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
c = b(json.dumps({"sub": "bench-user", "aud": aud, "iat": now, "exp": now + 3600,
                  "scope": "read:data"}).encode())
s = b(hmac.new(secret.encode(), f"{h}.{c}".encode(), hashlib.sha256).digest())
print(f"{h}.{c}.{s}")
PY
}

# The wrk script: one 1 KiB tools/call, the credential header from the
# environment (CRED_HEADER, CRED_VALUE), and a machine-readable summary:
# RESULT requests/s p50-ms p99-ms non-2xx requests.
cat >"$TMP/call.lua" <<'LUA'
local pad = string.rep("x", 900)
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"protected_operation","arguments":{"param":"bench","padding":"' .. pad .. '"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
local name, value = os.getenv("CRED_HEADER"), os.getenv("CRED_VALUE")
if name and name ~= "" then wrk.headers[name] = value end
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n", summary.requests / s,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.requests))
end
LUA
