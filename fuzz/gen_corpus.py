#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/: hand-made seeds plus
systematic variants (truncations, byte flips, nesting), named by SHA-1 like
libFuzzer's own corpus files. Deterministic: run it again to regenerate."""

import base64, hashlib, hmac, json, os, random

HERE = os.path.dirname(os.path.abspath(__file__))
API_KEY = b"mcp_sk_fuzz-key-0123456789abcdef"
RESOURCE = "https://mcp.example.com/mcp"
rng = random.Random(9)


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for s in seeds:
        if isinstance(s, str):
            s = s.encode()
        with open(os.path.join(d, hashlib.sha1(s).hexdigest()), "wb") as f:
            f.write(s)


def variants(seeds, n):
    out = list(seeds)
    for _ in range(n):
        s = bytearray(rng.choice(seeds) if isinstance(rng.choice(seeds), bytes) else rng.choice(seeds).encode())
        op = rng.randrange(3)
        if op == 0 and s:
            s = s[: rng.randrange(len(s))]
        elif op == 1 and s:
            s[rng.randrange(len(s))] = rng.randrange(256)
        else:
            s.insert(rng.randrange(len(s) + 1), rng.choice(b'{}[]",:\\ \x00\xff'))
        out.append(bytes(s))
    return out


def b64(obj):
    raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(secret, header, claims):
    signing = f"{b64(header)}.{b64(claims)}"
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(sig)}"


call = lambda i, name: {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": {}}}
json_rpc = [
    json.dumps(call(1, "get_user_data")),
    json.dumps([call(1, "a"), call(2, "b")]),
    '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    '{"jsonrpc":"2.0","id":"x","result":{}}',
    '{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"user://1/private"}}',
    '{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"p"}}',
    '{"jsonrpc":"2.0","id":5,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"}}}',
    '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":7}}',
    '{"jsonrpc":"1.0","id":1,"method":"ping"}', "[]", "{}", "null", "", "[[[[[[[[]]]]]]]]",
    '{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}',
    '{"jsonrpc":"2.0","id":1.5e300,"method":"ping"}', '{"a":"\\ud800"}', "\xef\xbb\xbf{}",
]
write("json_rpc_inspect", variants(json_rpc, 40))

auth = [
    b"", API_KEY, b"\x00Bearer abc", b"\x00ApiKey " + API_KEY, API_KEY + b"\x00Bearer x.y.z",
    API_KEY + b"\x00\x00" + API_KEY, b"\x00Basic dXNlcjpwYXNz", b"\x00bearer    ", b"\x00Bearer",
    b"\x00Bearer " + b"A" * 9000, b"wrong-key-0123456789abcdef\x00", b"\x00Bearer a\x00Bearer b",
    b"\x00ApiKey \x00ApiKey x", b"\x00BEARER eyJhbGciOiJub25lIn0.e30.", b"\xff\xfe\x00\x7f",
    ("\x00Bearer " + hs256("wrong-secret-0123456789abcdef0123", {"alg": "HS256"}, {"aud": RESOURCE, "exp": 4102444800})).encode(),
]
write("auth_headers", variants(auth, 40))

scopes = ["", "read:data", "read:data write:data", "  a\t\tb\nc  ", "a a a", "z y x", "\u00e9 \u2028 x",
          '["a","b c"]', "[1,2]", '"a b"', "{}", "\x0b\x0c", "read:data\x00admin"]
write("scopes", variants(scopes, 30))

templates = ["user://{id}/private\nuser://42/private", "user://{id}/private\nuser://a/b/private",
             "a{b}c{d}e\naXcYe", "{x}\n", "\n", "{\n{", "}{\n}{", "{}\n", "{a}{b}\nab",
             "file:///{path}\nfile:///etc/passwd", "x{y}?q={z}\nxa?q=b", "admin://system/stats\nadmin://system/stats",
             "{+a}\nx", "{a\u00e9}\nq", "\u00e9{a}\u00e9\n\u00e9\u00e9\u00e9"]
write("uri_template", variants(templates, 30))

names = ["get_user_data", "", "=?base64?Z2V0?=", "=?base64??=", "=?base64?!!!?=", "caf\u00e9",
         "a b", "=?BASE64?eA==?=", "=?base64?eA?=", "\x00", "=?utf-8?q?x?=", "x" * 300, "\u202e"]
write("mcp_name", variants(names, 30))

DUP_ALG = b'{"alg":"HS256","alg":"none"}'
now_exp = 4102444800
good_claims = {"sub": "u", "aud": RESOURCE, "exp": now_exp, "scope": "read:data"}
jwts = [
    hs256("wrong-secret-0123456789abcdef0123", {"alg": "HS256", "typ": "JWT"}, good_claims),
    hs256("fuzz-jwt-secret-0123456789abcdef0123456789", {"alg": "HS256"}, {**good_claims, "exp": 1}),
    hs256("fuzz-jwt-secret-0123456789abcdef0123456789", {"alg": "HS256"}, {**good_claims, "aud": "https://other"}),
    hs256("fuzz-jwt-secret-0123456789abcdef0123456789", {"alg": "HS256", "crit": ["x"]}, good_claims),
    f"{b64({'alg': 'none'})}.{b64(good_claims)}.",
    f"{b64({'alg': 'RS256'})}.{b64(good_claims)}.c2ln",
    b64(DUP_ALG) + "." + b64(good_claims) + ".x",
    f"{b64({'alg': 'HS256'})}.{b64(b'[]')}.x", f"{b64({'alg': 'HS256'})}.{b64({'exp': 'soon'})}.x",
    "a.b.c", "..", "....", "", "eyJ", "x" * 9000, "\u00e9.\u00e9.\u00e9",
]
write("jwt_validate", variants(jwts, 30))

# jwt_claims: payloads the target signs itself, so the claims checks run.
ISSUER = "https://auth.example.com"
base = {"iss": ISSUER, "aud": RESOURCE, "sub": "user-1", "exp": now_exp}
claims = [
    base, {**base, "scope": "read:data write:data"}, {**base, "scp": ["a", "b c"]},
    {**base, "aud": ["https://other", RESOURCE]}, {**base, "aud": "https://other"}, {**base, "aud": []},
    {**base, "iss": "https://evil.example.com"}, {k: v for k, v in base.items() if k != "iss"},
    {k: v for k, v in base.items() if k != "exp"}, {**base, "exp": 1}, {**base, "exp": 4102444800.7},
    {**base, "exp": -1}, {**base, "exp": "4102444800"}, {**base, "exp": 1e300}, {**base, "exp": 18446744073709551615},
    {**base, "nbf": 4102444800}, {**base, "nbf": 0}, {**base, "nbf": None}, {**base, "iat": 4102444800},
    {**base, "iat": 1.5}, {k: v for k, v in base.items() if k != "sub"} | {"client_id": "cli"},
    {k: v for k, v in base.items() if k != "sub"} | {"azp": "cli"}, {**base, "sub": ""}, {**base, "sub": 7},
    {**base, "client_id": 7}, {**base, "scope": None}, {**base, "scp": [1]}, {**base, "scope": "a", "scp": 5},
    {**base, "typ": "at+jwt", "jti": "x", "nested": {"a": [1, 2, {"b": None}]}},
]
raw_claims = [json.dumps(c, separators=(",", ":")) for c in claims] + [
    '{"iss":"https://auth.example.com","aud":"https://mcp.example.com/mcp","sub":"u","exp":4102444800,"exp":1}',
    " { \"iss\" : \"https://auth.example.com\" , \"aud\" : \"https://mcp.example.com/mcp\" , \"sub\" : \"u\" , \"exp\" : 4102444800 } ",
    "[]", "null", "", "{}", "\"x\"", "{\"sub\":\"\\ud800\"}",
]
write("jwt_claims", variants(raw_claims, 30))

# dpop_proof: claims the target signs itself (starting with "{"), and raw
# DPoP header values, some signed by a key of their own (ES256, P-256).
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives import hashes

DPOP_NOW = 1800000000
DPOP_ATH = b64(hashlib.sha256(b"fuzz-access-token").digest())
dpop_good = {"jti": "j-1", "htm": "POST", "htu": RESOURCE, "iat": DPOP_NOW, "ath": DPOP_ATH}
dpop_claims = [json.dumps(c, separators=(",", ":")) for c in [
    dpop_good,
    {**dpop_good, "htu": "HTTPS://MCP.EXAMPLE.COM:443/%6dcp?q=1#f"},
    {**dpop_good, "htu": "https://mcp.example.com/a/../mcp"},
    {**dpop_good, "htu": "https://mcp.example.com/other"},
    {**dpop_good, "htu": "ftp://mcp.example.com/mcp"},
    {**dpop_good, "htm": "GET"}, {**dpop_good, "htm": "post"},
    {**dpop_good, "iat": DPOP_NOW - 300}, {**dpop_good, "iat": DPOP_NOW - 301},
    {**dpop_good, "iat": DPOP_NOW + 301}, {**dpop_good, "iat": 1800000000.5},
    {**dpop_good, "iat": "1800000000"}, {**dpop_good, "iat": -1},
    {**dpop_good, "ath": "x"}, {k: v for k, v in dpop_good.items() if k != "ath"},
    {**dpop_good, "jti": ""}, {**dpop_good, "jti": "j" * 257},
    {k: v for k, v in dpop_good.items() if k != "jti"},
    {**dpop_good, "nonce": "n"},
]] + [
    '{"jti":"a","htm":"POST","htm":"GET","htu":"https://mcp.example.com/mcp","iat":1800000000}',
    "{", "{}", '{"jti":1}',
]
dpop_key = ec.derive_private_key(424242, ec.SECP256R1())
pub = dpop_key.public_key().public_numbers()
dpop_jwk = {"kty": "EC", "crv": "P-256", "x": b64(pub.x.to_bytes(32, "big")), "y": b64(pub.y.to_bytes(32, "big"))}


def es256_proof(header, claims):
    signing = f"{b64(header)}.{b64(claims)}"
    r, s = decode_dss_signature(dpop_key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


dpop_header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": dpop_jwk}
dpop_raw = [
    es256_proof(dpop_header, dpop_good),
    es256_proof({**dpop_header, "typ": "JWT"}, dpop_good),
    es256_proof({**dpop_header, "jwk": {**dpop_jwk, "d": "AAAA"}}, dpop_good),
    es256_proof({**dpop_header, "crit": ["x"]}, dpop_good),
    es256_proof({**dpop_header, "alg": "RS256"}, dpop_good),
    es256_proof({**dpop_header, "jwk": {**dpop_jwk, "crv": "P-384"}}, dpop_good),
    f"{b64({**dpop_header, 'alg': 'none'})}.{b64(dpop_good)}.",
    hs256("secret", {**dpop_header, "alg": "HS256"}, dpop_good),
    "a.b.c", "..", "", "x" * 9000,
]
write("dpop_proof", variants(dpop_claims + dpop_raw, 30))
