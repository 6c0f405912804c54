//! A counting HTTP proxy: forwards bytes both ways untouched and records the
//! method and path of every request, so tests count what otapub asked the
//! server without trusting otapub's own report. It can also misbehave on
//! chosen requests — answer 503 SlowDown or 500 itself, reset the
//! connection, or hold the request — to test the S3 client's own retries.

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

/// What the proxy does instead of forwarding a chosen request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answers with this status and S3 error code (e.g. 503 "SlowDown").
    Status(u16, &'static str),
    /// Closes the connection without an answer.
    Reset,
    /// Forwards the request after this long.
    Delay(std::time::Duration),
}

#[derive(Debug)]
struct FaultRule {
    method: String,
    path_contains: String,
    fault: Fault,
    remaining: usize,
}

type Faults = Arc<Mutex<Vec<FaultRule>>>;

pub struct CountingProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<Request>>>,
    faults: Faults,
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
        let faults: Faults = Arc::new(Mutex::new(Vec::new()));
        let faults2 = faults.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let log = log2.clone();
                let faults = faults2.clone();
                let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                std::thread::spawn(move || pump_requests(client, server, log, faults, strip_conditionals));
                std::thread::spawn(move || {
                    let (mut from, mut to) = (s2, c2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                });
            }
        });
        CountingProxy { port, log, faults }
    }

    /// The next `times` requests with `method` whose path contains
    /// `path_contains` meet `fault` instead of the server.
    pub fn inject(&self, method: &str, path_contains: &str, fault: Fault, times: usize) {
        self.faults.lock().expect("faults").push(FaultRule {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            fault,
            remaining: times,
        });
    }

    /// Drops every injected fault not used yet.
    pub fn heal(&self) {
        self.faults.lock().expect("faults").clear();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    pub fn clear(&self) {
        self.log.lock().expect("log").clear();
    }
}

/// The fault for a request, if one is due (and counts it used).
fn due(faults: &Faults, req: &Request) -> Option<Fault> {
    let mut faults = faults.lock().expect("faults");
    let rule = faults
        .iter_mut()
        .find(|r| r.remaining > 0 && r.method == req.method && req.target.contains(&r.path_contains))?;
    rule.remaining -= 1;
    Some(rule.fault.clone())
}

/// Copies client → server, parsing HTTP/1.1 framing to log each request.
fn pump_requests(client: TcpStream, mut server: TcpStream, log: Arc<Mutex<Vec<Request>>>, faults: Faults, strip: bool) {
    let mut answer = client.try_clone().expect("clone");
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
        log.lock().expect("log").push(req.clone());
        let fault = due(&faults, &req);
        match fault {
            Some(Fault::Reset) => {
                let _ = answer.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::Status(status, code)) => {
                // The body is read and dropped; the server never sees the request.
                if copy_body(&mut reader, &mut std::io::sink(), content_length, chunked).is_err() {
                    return;
                }
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
                );
                let reply = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if answer.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::Delay(d)) => std::thread::sleep(d),
            None => {}
        }
        if server.write_all(&head).is_err() {
            return;
        }
        if copy_body(&mut reader, &mut server, content_length, chunked).is_err() {
            return;
        }
    }
}

/// Copies one request body (Content-Length or chunked) to `to`.
fn copy_body(
    reader: &mut BufReader<TcpStream>,
    to: &mut impl Write,
    content_length: usize,
    chunked: bool,
) -> std::io::Result<()> {
    if chunked {
        loop {
            let mut size_line = String::new();
            if reader.read_line(&mut size_line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            to.write_all(size_line.as_bytes())?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk)?;
            to.write_all(&chunk)?;
            if size == 0 {
                return Ok(());
            }
        }
    }
    std::io::copy(&mut reader.take(content_length as u64), to)?;
    Ok(())
}
