//! A small HTTP/1.1 server on 127.0.0.1 that a test controls: it serves a folder,
//! honours `Range: bytes=N-` (206 with `Content-Range`), counts requests and body bytes,
//! and injects faults on a path: drop the connection halfway through the body once,
//! flip one byte, answer with a status, hang, or ignore ranges. It can also run as a
//! forwarding proxy (absolute-form request targets), to show a client used HTTP_PROXY.
//!
//! One thread per connection, `Connection: close` on every answer: simple, and enough
//! for a test's handful of requests. Dropping the server stops it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to do wrong on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Send the headers of the whole file and half its body, then close, the first time.
    DropHalfwayOnce,
    /// Serve the file with one byte changed in the middle.
    Corrupt,
    /// Answer with this status and no body.
    Status(u16),
    /// Read the request and never answer (until the server stops).
    Hang,
    /// Answer every request with 200 and the whole file, even when a range was asked.
    IgnoreRange,
    /// Send the body slowly: 64 KiB every 50 ms.
    Slow,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request target's path (absolute-form targets reduced to their path).
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// Whether the target was absolute-form (the client spoke to us as a proxy).
    pub absolute: bool,
    /// The status answered (0: none, hung).
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
}

#[derive(Default)]
struct State {
    faults: BTreeMap<String, Fault>,
    fired: BTreeMap<String, bool>,
    log: Vec<Request>,
}

/// A running server.
pub struct Server {
    /// Its address, `127.0.0.1:PORT`.
    pub addr: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

enum Mode {
    Files(PathBuf),
    /// Forward to the origin the absolute-form target names.
    Proxy,
}

impl Server {
    /// Serves `root` on a free port of 127.0.0.1.
    pub fn serve(root: impl Into<PathBuf>) -> Server {
        Server::start(Mode::Files(root.into()))
    }

    /// A forwarding proxy on a free port of 127.0.0.1: it only forwards to 127.0.0.1.
    pub fn proxy() -> Server {
        Server::start(Mode::Proxy)
    }

    fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let mode = Arc::new(mode);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, sp, mode) = (Arc::clone(&st), Arc::clone(&sp), Arc::clone(&mode));
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = handle(conn, &mode, &st, &sp);
                });
            }
        });
        Server {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Injects a fault on a path (as requested, e.g. `/dist/big.bin`).
    pub fn fault(&self, path: &str, fault: Fault) {
        let mut s = self.state.lock().expect("state");
        s.faults.insert(path.to_owned(), fault);
        s.fired.remove(path);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.lock().expect("state").faults.clear();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().expect("state").log.clone()
    }

    /// Forgets the requests so far.
    pub fn reset_log(&self) {
        self.state.lock().expect("state").log.clear();
    }

    /// Body bytes sent for a path, over all requests.
    pub fn body_bytes(&self, path: &str) -> u64 {
        self.requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.body_bytes)
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(
    mut conn: TcpStream,
    mode: &Mode,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let absolute = target.starts_with("http://");
    let path = if absolute {
        let rest = target.trim_start_matches("http://");
        rest.find('/').map_or("/", |i| &rest[i..]).to_owned()
    } else {
        target.clone()
    };
    let mut req = Request {
        path: path.clone(),
        range: header("range"),
        absolute,
        status: 0,
        body_bytes: 0,
    };
    let root = match mode {
        Mode::Proxy => {
            let r = forward(&mut conn, &method, &target, &headers, &mut req);
            state.lock().expect("state").log.push(req);
            return r;
        }
        Mode::Files(root) => root,
    };
    let fault = {
        let mut s = state.lock().expect("state");
        match s.faults.get(&path).copied() {
            Some(Fault::DropHalfwayOnce) if s.fired.get(&path).copied().unwrap_or(false) => None,
            Some(f) => {
                s.fired.insert(path.clone(), true);
                Some(f)
            }
            None => None,
        }
    };
    let result = serve_file(&mut conn, root, &method, &mut req, fault, stop);
    state.lock().expect("state").log.push(req);
    result
}

fn serve_file(
    conn: &mut TcpStream,
    root: &std::path::Path,
    method: &str,
    req: &mut Request,
    fault: Option<Fault>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    if fault == Some(Fault::Hang) {
        let start = Instant::now();
        while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return Ok(());
    }
    if let Some(Fault::Status(code)) = fault {
        req.status = code;
        return answer(conn, code, &[], b"");
    }
    if method != "GET" {
        req.status = 405;
        return answer(conn, 405, &[], b"");
    }
    let rel = percent_decode(req.path.split('?').next().unwrap_or(""));
    if rel.split('/').any(|s| s == "..") {
        req.status = 400;
        return answer(conn, 400, &[], b"");
    }
    let file = root.join(rel.trim_start_matches('/'));
    let Ok(mut data) = std::fs::read(&file) else {
        req.status = 404;
        return answer(conn, 404, &[], b"not found\n");
    };
    if fault == Some(Fault::Corrupt) && !data.is_empty() {
        let mid = data.len() / 2;
        data[mid] ^= 0x01;
    }
    let size = data.len() as u64;
    let from = req
        .range
        .as_deref()
        .filter(|_| fault != Some(Fault::IgnoreRange))
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<u64>().ok());
    let (status, body, extra) = match from {
        Some(n) if n >= size => {
            req.status = 416;
            return answer(conn, 416, &[format!("Content-Range: bytes */{size}")], b"");
        }
        Some(n) => (
            206,
            &data[n as usize..],
            vec![format!("Content-Range: bytes {n}-{}/{size}", size - 1)],
        ),
        None => (200, &data[..], vec![]),
    };
    req.status = status;
    if fault == Some(Fault::DropHalfwayOnce) {
        let half = body.len() / 2;
        head(conn, status, &extra, body.len() as u64)?;
        conn.write_all(&body[..half])?;
        conn.flush()?;
        req.body_bytes = half as u64;
        // A reset, not a clean end: what a broken link looks like.
        let _ = conn.shutdown(Shutdown::Both);
        return Ok(());
    }
    head(conn, status, &extra, body.len() as u64)?;
    // In pieces, so a client that gives up mid-way is counted for what it got.
    for chunk in body.chunks(64 << 10) {
        if fault == Some(Fault::Slow) {
            std::thread::sleep(Duration::from_millis(50));
        }
        conn.write_all(chunk)?;
        req.body_bytes += chunk.len() as u64;
    }
    conn.flush()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn head(conn: &mut TcpStream, code: u16, extra: &[String], len: u64) -> std::io::Result<()> {
    let mut h = format!(
        "HTTP/1.1 {code} {}\r\nContent-Length: {len}\r\nConnection: close\r\nAccept-Ranges: bytes\r\n",
        reason(code)
    );
    for e in extra {
        h.push_str(e);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    conn.write_all(h.as_bytes())
}

fn answer(conn: &mut TcpStream, code: u16, extra: &[String], body: &[u8]) -> std::io::Result<()> {
    head(conn, code, extra, body.len() as u64)?;
    conn.write_all(body)?;
    conn.flush()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Forwards one absolute-form request to its origin (only 127.0.0.1 is allowed) and
/// copies the answer back.
fn forward(
    conn: &mut TcpStream,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    req: &mut Request,
) -> std::io::Result<()> {
    let rest = target.trim_start_matches("http://");
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    if !authority.starts_with("127.0.0.1:") {
        req.status = 502;
        return answer(
            conn,
            502,
            &[],
            b"this test proxy only forwards to 127.0.0.1\n",
        );
    }
    let mut up = TcpStream::connect(authority)?;
    let mut h = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        if k != "proxy-connection" && k != "connection" {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    h.push_str("Connection: close\r\n\r\n");
    up.write_all(h.as_bytes())?;
    let mut buf = Vec::new();
    up.read_to_end(&mut buf)?;
    req.status = std::str::from_utf8(buf.get(9..12).unwrap_or(b"000"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body_at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf.len(), |i| i + 4);
    req.body_bytes = (buf.len() - body_at) as u64;
    conn.write_all(&buf)?;
    conn.flush()
}
