//! Parsers for setting values. Each is used both for flags/environment (through clap) and for
//! the TOML file, so a value means the same wherever it comes from. The pure rules live with
//! the file structs in `filegrid_proto::config::values`; resolving addresses is I/O, so it is
//! here.

use std::net::{SocketAddr, ToSocketAddrs};

pub use filegrid_proto::config::values::*;

/// A listen or connect address, `host:port` (host names are resolved once, at start).
pub fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(format!("{s:?} is not host:port"));
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not a usable host:port: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(socket_addr("127.0.0.1:9669").is_ok());
        assert!(socket_addr("localhost:9669").is_ok());
        assert!(socket_addr("127.0.0.1").is_err());
        assert!(socket_addr("nonsense:xx").is_err());
    }
}
