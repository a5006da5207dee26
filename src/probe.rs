//! `brief health-check`: one plain-HTTP GET whose status decides the exit code, so container images need no curl.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The status code of `GET url` (`http://host[:port]/path` only), or why there is none.
pub fn get_status(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are checked"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let host_port = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    // One write: a server may read the request in a single call.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // The status line is all that is needed: `HTTP/1.1 200 OK`.
    let mut head = [0u8; 32];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(format!("{url}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn answer_once(response: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // The whole request head, however it arrives.
            let mut request = Vec::new();
            let mut buf = [0u8; 256];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early: {request:?}");
                request.extend_from_slice(&buf[..n]);
            }
            assert!(request.starts_with(b"GET /health HTTP/1.0\r\n"));
            stream.write_all(response.as_bytes()).unwrap();
        });
        url
    }

    #[test]
    fn the_status_code_is_read_from_the_status_line() {
        let second = Duration::from_secs(1);
        assert_eq!(get_status(&answer_once("HTTP/1.1 200 OK\r\n\r\n{}"), second), Ok(200));
        assert_eq!(get_status(&answer_once("HTTP/1.1 503 Service Unavailable\r\n\r\n"), second), Ok(503));
        assert!(get_status("https://example.com/health", second).unwrap_err().contains("only http://"));
        assert!(get_status("http://127.0.0.1:9/health", second).is_err());
    }
}
