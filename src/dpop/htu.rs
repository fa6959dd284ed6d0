//! `htu` normalisation (RFC 9449 §4.3 step 9, RFC 3986 §6.2.2 and §6.2.3):
//! the proof's `htu` and the request's public URL are compared after both
//! are normalised the same way.
//!
//! - query and fragment are dropped;
//! - scheme and host are lowercased; only `http` and `https` are accepted;
//! - an empty port and the scheme's default port (80, 443) are dropped;
//! - an empty path becomes `/`;
//! - percent-encoding: hex digits uppercased, encoded unreserved
//!   characters (`A-Z a-z 0-9 - . _ ~`) decoded;
//! - dot segments removed (RFC 3986 §5.2.4).
//!
//! Refused (no match possible): userinfo (`user@host`), a percent sign in
//! the host, a bad percent triplet, a character outside RFC 3986's set,
//! anything non-ASCII, more than [`MAX_HTU_LEN`] bytes.

/// The longest `htu` (and request URL) considered, in bytes.
pub(crate) const MAX_HTU_LEN: usize = 2048;

/// The normal form of `url`, or `None` when it is not an http(s) URL this
/// module accepts.
pub(crate) fn normalize(url: &str) -> Option<String> {
    if url.len() > MAX_HTU_LEN || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let url = url.split('#').next().unwrap_or_default();
    let url = url.split('?').next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') || authority.contains('%') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inner, after) = v6.split_once(']')?;
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let port = match after {
            "" => "",
            p => p.strip_prefix(':')?,
        };
        (format!("[{}]", inner.to_ascii_lowercase()), port)
    } else {
        let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
        if host.is_empty() || !host.bytes().all(|b| is_unreserved(b) || is_sub_delim(b)) {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port: Option<u16> = match port {
        "" => None,
        p if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        _ => return None,
    };
    let path = normalize_percent(path)?;
    let path = remove_dot_segments(&path);
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    let mut out = String::with_capacity(scheme.len() + host.len() + path.len() + 9);
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host);
    if let Some(port) = port.filter(|p| *p != default_port) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(&path);
    Some(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §6.2.2.1 / §6.2.2.2 on a path: uppercase triplets, decode
/// unreserved ones; refuse characters a path cannot hold.
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            let v = hi << 4 | lo;
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
            }
            i += 3;
        } else if is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@' | b'/') {
            out.push(char::from(b));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    // Work segment by segment on an absolute path ("/a/b").
    while !input.is_empty() {
        let rest = input.strip_prefix('/').unwrap_or(input);
        let (seg, next) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        match seg {
            "." => trailing_slash = next.is_empty(),
            ".." => {
                out.pop();
                trailing_slash = next.is_empty();
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
        input = next;
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing_slash || (s.is_empty() && !path.is_empty()) {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::normalize;

    fn n(s: &str) -> Option<String> {
        normalize(s)
    }

    #[test]
    fn case_ports_and_empty_path() {
        let want = Some("https://mcp.example.com/mcp".to_owned());
        assert_eq!(n("https://mcp.example.com/mcp"), want);
        assert_eq!(n("HTTPS://MCP.Example.COM/mcp"), want);
        assert_eq!(n("https://mcp.example.com:443/mcp"), want);
        assert_eq!(n("https://mcp.example.com:/mcp"), want);
        assert_eq!(n("https://mcp.example.com:0443/mcp"), want);
        assert_eq!(
            n("https://mcp.example.com:8443/mcp").unwrap(),
            "https://mcp.example.com:8443/mcp"
        );
        assert_eq!(n("http://h:80").unwrap(), "http://h/");
        assert_eq!(n("http://h:443/").unwrap(), "http://h:443/");
        assert_eq!(n("http://h:0/").unwrap(), "http://h:0/");
        assert_eq!(n("http://[::1]:8080/x").unwrap(), "http://[::1]:8080/x");
        assert_eq!(n("http://[FE80::1]/x").unwrap(), "http://[fe80::1]/x");
        // The path's case matters.
        assert_ne!(n("https://h/MCP"), n("https://h/mcp"));
    }

    #[test]
    fn query_and_fragment_ignored() {
        assert_eq!(n("https://h/mcp?x=1#f"), n("https://h/mcp"));
        assert_eq!(n("https://h/mcp#f?x"), n("https://h/mcp"));
    }

    #[test]
    fn percent_encoding_and_dot_segments() {
        assert_eq!(n("https://h/%6d%63%70").unwrap(), "https://h/mcp");
        assert_eq!(n("https://h/a%2fb").unwrap(), "https://h/a%2Fb");
        assert_eq!(n("https://h/a/./b/../c").unwrap(), "https://h/a/c");
        assert_eq!(n("https://h/a/%2E%2E/c").unwrap(), "https://h/c");
        assert_eq!(n("https://h/a/b/..").unwrap(), "https://h/a/");
        assert_eq!(n("https://h/../../x").unwrap(), "https://h/x");
    }

    #[test]
    fn refusals() {
        for bad in [
            "ftp://h/x",
            "https:/h/x",
            "//h/x",
            "https://user@h/x",
            "https:///x",
            "https://h%41/x",
            "https://h/%zz",
            "https://h/%4",
            "https://h/a b",
            "https://h/\u{e9}",
            "https://h/<x>",
            "https://h:99999/x",
            "https://h:x/x",
            "https://[::1/x",
            "https://[]/x",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
        assert_eq!(n(&format!("https://h/{}", "a".repeat(3000))), None);
    }
}
