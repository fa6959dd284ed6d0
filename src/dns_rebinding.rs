//! The `Host` and `Origin` allow-lists of a server, drawn from its
//! resource identifier (the public URL), for DNS-rebinding checks such as
//! rmcp's `StreamableHttpServerConfig::with_allowed_hosts` /
//! `with_allowed_origins`.

use http::Uri;

use crate::{metadata::ProtectedResource, url::is_loopback};

/// DNS-rebinding allow-lists (the transport checks them; this crate only
/// derives them).
impl ProtectedResource {
    /// The `Host` header values a server reached at this resource
    /// identifier should accept: its host, with its port when the
    /// identifier names one (`https://mcp.example.com:8443/mcp` →
    /// `mcp.example.com:8443`; without a port, any port of that host). A
    /// loopback identifier (`localhost`, `127.0.0.1`, `[::1]`) allows all
    /// three loopback names, so `curl localhost:3000` works when the
    /// identifier says `127.0.0.1:3000`.
    ///
    /// Never empty (an empty list would turn rmcp's check off).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_mcp_auth::ProtectedResource;
    ///
    /// # fn main() -> Result<(), tower_mcp_auth::ConfigError> {
    /// let public = ProtectedResource::builder("https://mcp.example.com/mcp").build()?;
    /// assert_eq!(public.allowed_hosts(), ["mcp.example.com"]);
    /// assert_eq!(public.allowed_origins(), ["https://mcp.example.com:443"]);
    ///
    /// let local = ProtectedResource::builder("http://127.0.0.1:3000/mcp").build()?;
    /// assert_eq!(local.allowed_hosts(), ["localhost:3000", "127.0.0.1:3000", "[::1]:3000"]);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn allowed_hosts(&self) -> Vec<String> {
        let site = Site::of(self);
        site.hosts
            .iter()
            .map(|h| match site.explicit_port {
                Some(p) => format!("{h}:{p}"),
                None => h.clone(),
            })
            .collect()
    }

    /// The browser `Origin` values a server reached at this resource
    /// identifier should accept: its scheme, host and port (the scheme's
    /// default when the identifier names none), for each of the hosts of
    /// [`allowed_hosts`](Self::allowed_hosts). Always with a port: rmcp
    /// reads an entry without one as "any port". Never empty.
    #[must_use]
    pub fn allowed_origins(&self) -> Vec<String> {
        let site = Site::of(self);
        let port = site
            .explicit_port
            .unwrap_or(if site.scheme == "http" { 80 } else { 443 });
        site.hosts
            .iter()
            .map(|h| format!("{}://{h}:{port}", site.scheme))
            .collect()
    }
}

/// The parts of an identifier the allow-lists are made of.
struct Site {
    scheme: String,
    hosts: Vec<String>,
    explicit_port: Option<u16>,
}

impl Site {
    fn of(resource: &ProtectedResource) -> Self {
        // The builder checked the identifier: absolute, with a host,
        // `https` (or `http` on loopback). Were it ever unreadable, the
        // lists would name loopback only (closed, never empty).
        let uri: Uri = resource.resource().parse().unwrap_or_default();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().unwrap_or("localhost").to_ascii_lowercase();
        let hosts = if is_loopback(&host) {
            vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
        } else {
            vec![host]
        };
        Self {
            scheme,
            hosts,
            explicit_port: uri.port_u16(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(url: &str) -> (Vec<String>, Vec<String>) {
        let r = ProtectedResource::builder(url).build().unwrap();
        (r.allowed_hosts(), r.allowed_origins())
    }

    #[test]
    fn public_url_gives_its_host_and_origin() {
        assert_eq!(
            lists("https://MCP.Example.com/mcp"),
            (
                vec!["mcp.example.com".to_owned()],
                vec!["https://mcp.example.com:443".to_owned()]
            )
        );
        assert_eq!(
            lists("https://mcp.example.com:8443/mcp"),
            (
                vec!["mcp.example.com:8443".to_owned()],
                vec!["https://mcp.example.com:8443".to_owned()]
            )
        );
    }

    #[test]
    fn loopback_allows_every_loopback_name_on_its_port() {
        for url in [
            "http://localhost:3000/mcp",
            "http://127.0.0.1:3000/mcp",
            "http://[::1]:3000/mcp",
        ] {
            let (hosts, origins) = lists(url);
            assert_eq!(hosts, ["localhost:3000", "127.0.0.1:3000", "[::1]:3000"]);
            assert_eq!(
                origins,
                [
                    "http://localhost:3000",
                    "http://127.0.0.1:3000",
                    "http://[::1]:3000"
                ]
            );
        }
        let (hosts, origins) = lists("http://localhost/mcp");
        assert_eq!(hosts, ["localhost", "127.0.0.1", "[::1]"]);
        assert_eq!(origins[0], "http://localhost:80");
    }
}
