//! A counting HTTP proxy: forwards bytes both ways untouched and records the
//! method and path of every request, so tests count what otapub asked the
//! server without trusting otapub's own report.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
}

pub struct CountingProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<Request>>>,
}

impl CountingProxy {
    pub fn start(upstream_port: u16) -> CountingProxy {
        CountingProxy::start_with(upstream_port, false)
    }

    /// With `strip_conditionals`, drops `If-Match` / `If-None-Match` request
    /// headers: a server that ignores conditional writes, as Garage 2.5 does.
    pub fn start_with(upstream_port: u16, strip_conditionals: bool) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let log = log2.clone();
                let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                std::thread::spawn(move || pump_requests(client, server, log, strip_conditionals));
                std::thread::spawn(move || {
                    let (mut from, mut to) = (s2, c2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                });
            }
        });
        CountingProxy { port, log }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    pub fn clear(&self) {
        self.log.lock().expect("log").clear();
    }
}

/// Copies client → server, parsing HTTP/1.1 framing to log each request.
fn pump_requests(client: TcpStream, mut server: TcpStream, log: Arc<Mutex<Vec<Request>>>, strip: bool) {
    let mut reader = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        let mut line = String::new();
        let mut content_length = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = server.shutdown(Shutdown::Write);
                    return;
                }
                Ok(_) => {}
            }
            let lower = line.to_ascii_lowercase();
            if strip && (lower.starts_with("if-match:") || lower.starts_with("if-none-match:")) {
                continue;
            }
            head.extend_from_slice(line.as_bytes());
            if let Some(v) = lower.strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
            if line == "\r\n" {
                break;
            }
        }
        let first = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
        let mut words = first.split_whitespace();
        let req = Request {
            method: words.next().unwrap_or("").into(),
            target: words.next().unwrap_or("").into(),
        };
        log.lock().expect("log").push(req);
        if server.write_all(&head).is_err() {
            return;
        }
        if chunked {
            loop {
                let mut size_line = String::new();
                if reader.read_line(&mut size_line).unwrap_or(0) == 0 {
                    return;
                }
                let _ = server.write_all(size_line.as_bytes());
                let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                let mut chunk = vec![0u8; size + 2];
                if reader.read_exact(&mut chunk).is_err() || server.write_all(&chunk).is_err() {
                    return;
                }
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut body = (&mut reader).take(content_length as u64);
            if std::io::copy(&mut body, &mut server).is_err() {
                return;
            }
        }
    }
}
