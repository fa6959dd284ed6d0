//! Which headers cross the gateway, each way.
//!
//! Towards the upstream an allow-list: what Streamable HTTP needs and
//! nothing else, so that no credential of the caller (`Authorization`,
//! `X-API-Key`, `DPoP`, `Cookie`, `Proxy-Authorization`, or a header this
//! list has never heard of) can reach it. `Accept-Encoding` is not passed
//! either: the list filter reads the upstream's replies, so they come
//! unencoded.
//!
//! Back to the caller everything but the hop-by-hop headers and the
//! upstream's `WWW-Authenticate` (a challenge about the gateway's own
//! credential, which the caller can do nothing about).

use http::{header, HeaderMap, HeaderName};

/// The headers passed to the upstream by name (besides every `Mcp-*`).
const FORWARDED: [HeaderName; 5] = [
    header::ACCEPT,
    header::CONTENT_TYPE,
    header::USER_AGENT,
    HeaderName::from_static("last-event-id"),
    // W3C trace context: the caller's trace continues upstream.
    HeaderName::from_static("traceparent"),
];

/// Whether the request header `name` goes to the upstream: the allow-list
/// above, `tracestate`, and the MCP headers (`Mcp-Session-Id`,
/// `Mcp-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`, …).
fn forwarded(name: &HeaderName) -> bool {
    FORWARDED.contains(name) || name == "tracestate" || name.as_str().starts_with("mcp-")
}

/// The headers of a request to the upstream: the caller's that pass the
/// allow-list, then the gateway's own (`own`, its credential), then `Host`
/// (`host`, the upstream's authority).
pub(super) fn outbound(
    caller: &HeaderMap,
    own: &HeaderMap,
    host: header::HeaderValue,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(caller.len() + own.len() + 1);
    for (name, value) in caller {
        if forwarded(name) {
            out.append(name.clone(), value.clone());
        }
    }
    for (name, value) in own {
        out.insert(name.clone(), value.clone());
    }
    out.insert(header::HOST, host);
    out
}

/// Strips from an upstream response's headers the hop-by-hop ones (RFC
/// 9110 §7.6.1: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) and
/// `WWW-Authenticate`.
pub(super) fn inbound(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::WWW_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn credentials_never_leave_and_mcp_headers_do() {
        let mut caller = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer secret"),
            ("x-api-key", "mcp_sk_secret"),
            ("dpop", "proof"),
            ("cookie", "session=secret"),
            ("proxy-authorization", "Basic secret"),
            ("x-custom-token", "secret"),
            ("connection", "keep-alive, x-foo"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("host", "gateway.example"),
            ("origin", "http://gateway.example"),
            ("accept-encoding", "gzip"),
            ("content-length", "12"),
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-session-id", "s1"),
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("last-event-id", "7"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ] {
            caller.append(name, HeaderValue::from_static(value));
        }
        let mut own = HeaderMap::new();
        own.insert("authorization", HeaderValue::from_static("Bearer upstream"));
        let out = outbound(&caller, &own, HeaderValue::from_static("127.0.0.1:8000"));
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "authorization",
                "content-type",
                "host",
                "last-event-id",
                "mcp-method",
                "mcp-name",
                "mcp-protocol-version",
                "mcp-session-id",
                "traceparent"
            ]
        );
        assert_eq!(out["authorization"], "Bearer upstream");
        assert_eq!(out["host"], "127.0.0.1:8000");
    }

    #[test]
    fn hop_by_hop_headers_and_challenges_stay_behind() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("www-authenticate", "Bearer realm=\"upstream\""),
            ("content-type", "text/event-stream"),
            ("mcp-session-id", "s1"),
        ] {
            h.append(name, HeaderValue::from_static(value));
        }
        inbound(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "mcp-session-id"]);
    }
}
