//! URL checks for every URL this crate is given or finds: configuration
//! (resource identifiers, issuers, JWKS and introspection endpoints) and
//! fetched documents (the endpoints of authorization-server metadata).
//!
//! One rule everywhere: an absolute `https` URL with a host and no fragment;
//! `http` only on a loopback host (`localhost`, `127.0.0.0/8`, `::1`), for
//! development and tests. Identifiers (a resource identifier, an issuer)
//! also have no query component.

use http::Uri;

use crate::config::ConfigError;

/// Checks that `url` is absolute, `https` (or `http` on a loopback host) and
/// has no fragment; `what` names it in the error.
pub(crate) fn check_url(what: &'static str, url: &str) -> Result<Uri, ConfigError> {
    let invalid = |reason| ConfigError::InvalidUrl {
        what,
        url: url.to_owned(),
        reason,
    };
    if url.contains('#') {
        return Err(invalid("it must not have a fragment"));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("it is not a valid absolute URL"))?;
    let host = uri
        .host()
        .ok_or_else(|| invalid("it must be an absolute URL with a host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(invalid(
            "it must use https (http is allowed only on localhost / loopback addresses)",
        )),
        _ => Err(invalid("it must be an absolute https URL")),
    }
}

/// As [`check_url`], for an identifier: no query component either.
/// `rule` is the reason given when it has one (which RFC says so).
pub(crate) fn check_identifier(
    what: &'static str,
    url: &str,
    rule: &'static str,
) -> Result<Uri, ConfigError> {
    let uri = check_url(what, url)?;
    if uri.query().is_some() {
        return Err(ConfigError::InvalidUrl {
            what,
            url: url.to_owned(),
            reason: rule,
        });
    }
    Ok(uri)
}

/// `localhost` or a loopback IP address (IPv6 in brackets or not).
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An audience a token may name (a resource identifier, most often),
/// compared as RFC 3986 compares URIs: exactly, or equal once both are
/// normalised ([`normalize`]). The configured side is normalised once,
/// here; a token's `aud` value only when it is not an exact match.
#[cfg_attr(not(any(feature = "jwt", feature = "introspection")), allow(dead_code))]
#[derive(Clone, Debug)]
pub(crate) struct Audience {
    exact: Box<str>,
    normal: Option<Box<str>>,
}

#[cfg_attr(not(any(feature = "jwt", feature = "introspection")), allow(dead_code))]
impl Audience {
    pub(crate) fn new(audience: &str) -> Self {
        Self {
            exact: audience.into(),
            normal: normalize(audience).map(Into::into),
        }
    }

    /// The audience as configured.
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    pub(crate) fn as_str(&self) -> &str {
        &self.exact
    }

    /// Whether some of `accepted` is named by `aud` (a token's `aud`
    /// value): exact first, then the normal form of `aud`, computed at
    /// most once.
    pub(crate) fn any_named_by(accepted: &[Self], aud: &str) -> bool {
        if accepted.iter().any(|a| *a.exact == *aud) {
            return true;
        }
        if accepted.iter().all(|a| a.normal.is_none()) {
            return false;
        }
        let Some(normal) = normalize(aud) else {
            return false;
        };
        accepted
            .iter()
            .any(|a| a.normal.as_deref() == Some(&*normal))
    }
}

/// The normal form of an absolute URI with an authority
/// (`scheme://authority/path?query#fragment`), by RFC 3986 §6.2.2–6.2.3:
/// scheme and host in lower case; percent-encodings with upper-case hex
/// digits, and those of unreserved characters decoded; dot-segments
/// removed; the scheme's default port (`http`/`ws` 80, `https`/`wss` 443)
/// and an empty port left out; an empty `http(s)` path written `/`.
/// The path, query and user information keep their case: `/mcp` and
/// `/MCP` are different resources. `None` for anything else (no scheme,
/// no authority, a byte outside visible ASCII, a bad percent-encoding or
/// port).
pub(crate) fn normalize(uri: &str) -> Option<String> {
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (scheme, rest) = uri.split_once(':')?;
    let mut bytes = scheme.bytes();
    if !bytes.next()?.is_ascii_alphabetic()
        || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.strip_prefix("//")?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (host, port) = if host_port.starts_with('[') {
        let end = host_port.find(']')? + 1;
        match &host_port[end..] {
            "" => (&host_port[..end], None),
            after => (&host_port[..end], Some(after.strip_prefix(':')?)),
        }
    } else {
        match host_port.rfind(':') {
            Some(colon) => (&host_port[..colon], Some(&host_port[colon + 1..])),
            None => (host_port, None),
        }
    };
    let default_port = match scheme.as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u16 = p.parse().ok()?;
            (Some(n) != default_port).then_some(n)
        }
        Some(_) => return None,
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = String::with_capacity(uri.len());
    out.push_str(&scheme);
    out.push_str("://");
    if let Some(u) = userinfo {
        out.push_str(&percent_normal(u, false)?);
        out.push('@');
    }
    out.push_str(&percent_normal(host, true)?);
    if let Some(p) = port {
        out.push(':');
        out.push_str(&p.to_string());
    }
    let path = remove_dot_segments(&percent_normal(path, false)?);
    if path.is_empty() && default_port.is_some() {
        out.push('/');
    }
    out.push_str(&path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&percent_normal(q, false)?);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(&percent_normal(f, false)?);
    }
    Some(out)
}

/// `s` with its percent-encodings normalised (RFC 3986 §6.2.2.1–2):
/// upper-case hex digits, unreserved characters decoded; the other
/// characters lower-cased when `lower` (a host). `None` for a `%` not
/// followed by two hex digits.
fn percent_normal(s: &str, lower: bool) -> Option<String> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let case = |b: u8| if lower { b.to_ascii_lowercase() } else { b };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            let v = hi << 4 | lo;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(case(v));
            } else {
                out.extend([b'%', HEX[usize::from(hi)], HEX[usize::from(lo)]]);
            }
            i += 3;
        } else {
            out.push(case(b[i]));
            i += 1;
        }
    }
    // Only ASCII went in (checked by `normalize`), only ASCII came out.
    String::from_utf8(out).ok()
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    fn pop(out: &mut String) {
        let cut = out.rfind('/').unwrap_or(0);
        out.truncate(cut);
    }
    let mut input = path;
    let mut out = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop(&mut out);
        } else if input == "/.." {
            input = "/";
            pop(&mut out);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3986_normal_forms() {
        let same = [
            ("HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp"),
            (
                "https://mcp.example.com:443/mcp",
                "https://mcp.example.com/mcp",
            ),
            (
                "https://mcp.example.com:/mcp",
                "https://mcp.example.com/mcp",
            ),
            ("http://localhost:80/mcp", "http://localhost/mcp"),
            ("http://localhost:0080/mcp", "http://localhost/mcp"),
            ("https://mcp.example.com", "https://mcp.example.com/"),
            (
                "https://mcp.example.com/%6d%63%70",
                "https://mcp.example.com/mcp",
            ),
            (
                "https://mcp.example.com/a%2fb",
                "https://mcp.example.com/a%2Fb",
            ),
            (
                "https://mcp.example.com/x/../mcp",
                "https://mcp.example.com/mcp",
            ),
            (
                "https://mcp.example.com/./mcp/.",
                "https://mcp.example.com/mcp/",
            ),
            (
                "https://mcp.example.com/%2E%2E/mcp",
                "https://mcp.example.com/mcp",
            ),
            ("https://[::1]:443/mcp", "https://[::1]/mcp"),
            ("https://[::1]:8443/mcp", "https://[::1]:8443/mcp"),
            (
                "https://Ann@MCP.example.com/mcp?Q=%7e#F",
                "https://Ann@mcp.example.com/mcp?Q=~#F",
            ),
            ("HTTP://127.0.0.1:3000/mcp", "http://127.0.0.1:3000/mcp"),
            ("urn+x://Host", "urn+x://host"),
        ];
        for (given, normal) in same {
            assert_eq!(normalize(given).as_deref(), Some(normal), "{given}");
        }
        for bad in [
            "mcp.example.com/mcp",
            "urn:example:mcp",
            "https://mcp.example.com/%zz",
            "https://mcp.example.com/%4",
            "https://mcp.example.com:99999/mcp",
            "https://mcp.example.com:4x3/mcp",
            "https://mcp.example.com/a b",
            "https://mcp.example.com/é",
            "https://[::1/mcp",
            "1https://x",
            "",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_audience_is_named_up_to_normalisation_and_no_further() {
        let ours = [Audience::new("https://mcp.example.com/mcp")];
        for aud in [
            "https://mcp.example.com/mcp",
            "HTTPS://mcp.example.com/mcp",
            "https://MCP.EXAMPLE.COM/mcp",
            "https://mcp.example.com:443/mcp",
            "https://mcp.example.com/%6Dcp",
        ] {
            assert!(Audience::any_named_by(&ours, aud), "{aud}");
        }
        for aud in [
            "https://mcp.example.com/other",
            "https://mcp.example.com/MCP",
            "https://mcp.example.com/mcp/",
            "https://mcp.example.com/",
            "https://mcp.example.com:8443/mcp",
            "http://mcp.example.com/mcp",
            "https://evil.example.com/mcp",
            "https://mcp.example.com/mcp?x",
            "https://mcp.example.com/mcp#f",
            "https://user@mcp.example.com/mcp",
            "mcp.example.com/mcp",
        ] {
            assert!(!Audience::any_named_by(&ours, aud), "{aud}");
        }
        // An audience that is no URI is compared exactly.
        let plain = [Audience::new("my-api")];
        assert!(Audience::any_named_by(&plain, "my-api"));
        assert!(!Audience::any_named_by(&plain, "MY-API"));
        assert_eq!(plain[0].as_str(), "my-api");
        // A root resource: with or without its `/`.
        let root = [Audience::new("https://mcp.example.com")];
        assert!(Audience::any_named_by(&root, "https://MCP.example.com/"));
    }

    #[test]
    fn https_anywhere_http_on_loopback_only() {
        for ok in [
            "https://auth.example.com",
            "https://auth.example.com/tenant?x=1",
            "http://localhost:8080/jwks",
            "http://LOCALHOST/jwks",
            "http://127.0.0.1:9/introspect",
            "http://127.1.2.3/",
            "http://[::1]:8080/mcp",
        ] {
            assert!(check_url("URL", ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://auth.example.com", "https"),
            ("http://10.0.0.1/jwks", "https"),
            ("https://auth.example.com/#frag", "fragment"),
            ("/jwks.json", "host"),
            ("auth.example.com/jwks", "URL"),
            ("ftp://auth.example.com/jwks", "https"),
            ("not a url", "URL"),
        ] {
            let e = check_url("JWKS URL", bad).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("JWKS URL") && text.contains(bad), "{text}");
            assert!(text.contains(why), "{bad}: {text}");
        }
    }

    #[test]
    fn identifiers_have_no_query() {
        assert!(check_identifier("issuer", "https://a.example.com/t", "no query").is_ok());
        let e = check_identifier("issuer", "https://a.example.com/t?x=1", "no query").unwrap_err();
        assert!(e.to_string().contains("no query"), "{e}");
        // The URL rules come first.
        let e = check_identifier("issuer", "http://a.example.com?x", "no query").unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
    }
}
