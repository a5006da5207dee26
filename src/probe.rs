//! `brief health-check`: one plain-HTTP GET whose status decides the exit code, so container images need no curl.

use std::time::Duration;

/// The status code of `GET url` (`http://` only: the health check of a server on its own machine), or why there
/// is none.
pub fn get_status(url: &str, timeout: Duration) -> Result<u16, String> {
    if !url.starts_with("http://") {
        return Err(format!("{url}: only http:// URLs are checked"));
    }
    match ureq::get(url).timeout(timeout).call() {
        Ok(response) => Ok(response.status()),
        Err(ureq::Error::Status(code, _)) => Ok(code),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
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
            assert!(request.starts_with(b"GET /health HTTP/1.1\r\n"));
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
