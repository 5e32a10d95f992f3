//! Feed URLs: `ws://`, `wss://`, `tcp://` and `tls://`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use super::NetError;

/// How a feed is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// WebSocket over plain TCP (`ws://`, default port 80).
    Ws,
    /// WebSocket over TLS (`wss://`, default port 443).
    Wss,
    /// Raw newline-delimited JSON over plain TCP (`tcp://`, default port 80).
    Tcp,
    /// Raw newline-delimited JSON over TLS (`tls://`, default port 443).
    Tls,
}

impl Scheme {
    /// The URL scheme as written (`"ws"`, `"wss"`, `"tcp"`, `"tls"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
        }
    }

    /// 443 for the TLS schemes, 80 for the others.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Wss | Scheme::Tls => 443,
            Scheme::Ws | Scheme::Tcp => 80,
        }
    }
}

/// A parsed feed URL.
///
/// `host` is kept without IPv6 brackets; `path` always starts with `/` and includes the query
/// (`/stream?streams=btcusdt@trade`); a fragment is dropped. Raw feeds ignore `path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// How the feed is carried.
    pub scheme: Scheme,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (the scheme's default when the URL names none).
    pub port: u16,
    /// Request target for the WebSocket handshake: path plus query, starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// Parses `scheme://host[:port][/path][?query]`. User info (`user@`) is refused, as is a
    /// path a WebSocket request line cannot carry.
    pub fn parse(url: &str) -> Result<Endpoint, NetError> {
        let bad = |why: &str| NetError::Url(format!("{url:?}: {why}"));
        let url_trimmed = url.trim();
        let (scheme, rest) = url_trimmed
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port][/path], e.g. wss://host/ws"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            _ => return Err(bad("unsupported scheme (use ws, wss, tcp or tls)")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err(bad("user info (user@host) is not supported"));
        }
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (host, tail) = after
                .split_once(']')
                .ok_or_else(|| bad("unterminated IPv6 literal"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("invalid IPv6 literal"));
            }
            let port = match tail {
                "" => None,
                t => Some(
                    t.strip_prefix(':')
                        .ok_or_else(|| bad("junk after IPv6 literal"))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if host.contains(':') && !authority.starts_with('[') {
            return Err(bad(
                "an IPv6 host must be written in brackets, e.g. [::1]:9000",
            ));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        {
            return Err(bad("invalid character in host"));
        }
        let port = match port {
            None => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("port must be a number from 1 to 65535")),
                Ok(p) => p,
            },
        };
        let path = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("whitespace or control character in path"));
        }
        let ep = Endpoint {
            scheme,
            host: host.to_string(),
            port,
            path,
        };
        if ep.is_websocket() && ep.ws_url().parse::<tungstenite::http::Uri>().is_err() {
            return Err(bad("path or query is not a valid request target"));
        }
        Ok(ep)
    }

    /// `wss://` and `tls://`.
    pub fn is_tls(&self) -> bool {
        matches!(self.scheme, Scheme::Wss | Scheme::Tls)
    }

    /// `ws://` and `wss://`.
    pub fn is_websocket(&self) -> bool {
        matches!(self.scheme, Scheme::Ws | Scheme::Wss)
    }

    /// `host:port` as it appears in messages (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves the host with the system resolver. This blocks for a DNS lookup unless `host` is
    /// an IP literal; an I/O thread that must never block resolves elsewhere and calls
    /// [`Connection::connect_to`](super::Connection::connect_to).
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, NetError> {
        let resolve_err = |source| NetError::Resolve {
            host: self.host.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(resolve_err)?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no addresses found",
            )));
        }
        Ok(addrs)
    }

    /// The URL the WebSocket handshake asks for (`Host` omits a default port).
    pub(crate) fn ws_url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let scheme = if self.is_tls() { "wss" } else { "ws" };
        if self.port == self.scheme.default_port() {
            format!("{scheme}://{host}{}", self.path)
        } else {
            format!("{scheme}://{host}:{}{}", self.port, self.path)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())?;
        if self.is_websocket() {
            f.write_str(&self.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binance_style_urls() {
        let ep =
            Endpoint::parse("wss://stream.binance.com:9443/stream?streams=btcusdt@trade").unwrap();
        assert_eq!(ep.scheme, Scheme::Wss);
        assert_eq!(ep.host, "stream.binance.com");
        assert_eq!(ep.port, 9443);
        assert_eq!(ep.path, "/stream?streams=btcusdt@trade");
        assert!(ep.is_tls() && ep.is_websocket());
    }

    #[test]
    fn default_ports_and_paths() {
        let ep = Endpoint::parse("wss://example.com").unwrap();
        assert_eq!((ep.port, ep.path.as_str()), (443, "/"));
        let ep = Endpoint::parse("WS://example.com?x=1#frag").unwrap();
        assert_eq!(
            (ep.scheme, ep.port, ep.path.as_str()),
            (Scheme::Ws, 80, "/?x=1")
        );
        let ep = Endpoint::parse("tcp://127.0.0.1:9000").unwrap();
        assert!(!ep.is_tls() && !ep.is_websocket());
        let ep = Endpoint::parse("tls://feed.example:7000").unwrap();
        assert!(ep.is_tls() && !ep.is_websocket());
        assert_eq!(ep.ws_url(), "wss://feed.example:7000/");
    }

    #[test]
    fn ipv6() {
        let ep = Endpoint::parse("ws://[::1]:8080/ws").unwrap();
        assert_eq!(ep.host, "::1");
        assert_eq!(ep.authority(), "[::1]:8080");
        assert_eq!(ep.ws_url(), "ws://[::1]:8080/ws");
        assert!(Endpoint::parse("ws://::1:8080/").is_err());
        assert!(Endpoint::parse("ws://[::1/").is_err());
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "",
            "example.com",
            "http://example.com",
            "ws://",
            "ws://:80/",
            "ws://host:0/",
            "ws://host:65536/",
            "ws://host:x/",
            "ws://user@host/",
            "ws://host/a b",
            "ws://ho st/",
            "ws://host/\u{7f}",
        ] {
            let e = Endpoint::parse(url).unwrap_err();
            assert!(matches!(e, NetError::Url(_)), "{url}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        let url = "wss://example.com:9443/ws?a=b";
        assert_eq!(Endpoint::parse(url).unwrap().to_string(), url);
        assert_eq!(
            Endpoint::parse("tcp://h:1/x").unwrap().to_string(),
            "tcp://h:1"
        );
    }
}
