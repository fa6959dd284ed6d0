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

#[cfg(test)]
mod tests {
    use super::*;

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
