//! The HTTP side of kit downloads: one blocking reqwest client (rustls on ring, proxies
//! from HTTPS_PROXY/HTTP_PROXY/NO_PROXY and, on Windows, the system settings), a retry
//! loop with exponential backoff, and a file fetch that resumes with `Range` requests.
//!
//! A resume is only trusted when the server answers 206 with a `Content-Range` that starts
//! exactly where our partial file ends and names the size kit.toml lists; a 200 means the
//! server ignored the range, so the partial file is dropped and the whole file written
//! again from that answer. Bytes are hashed as they are written, so a resumed file is not
//! read twice; a partial file left by an earlier run is hashed once before resuming.
//!
//! Timeouts apply to connecting and to each wait for data (a server that stops sending
//! mid-file times out), not to the whole transfer, so a large file on a slow link is
//! fine. Knobs: `COLINUX_SETUP_HTTP_TIMEOUT_SECS` (default 30),
//! `COLINUX_SETUP_HTTP_RETRIES` (failures in a row without progress, default 5) and
//! `COLINUX_SETUP_HTTP_BACKOFF_MS` (first wait, default 500, doubling up to 30 s).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};

use super::error::DownloadError;

/// No request is tried more often than this, whatever progress each one makes.
const MAX_ATTEMPTS: u32 = 50;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Timeouts and retries.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    /// Connect timeout, and the longest wait for the next bytes of an answer.
    pub timeout: Duration,
    /// Failures in a row, without a byte of progress, before giving up.
    pub retries: u32,
    /// The first wait before a retry; it doubles on each failure in a row.
    pub backoff: Duration,
}

impl Net {
    /// The defaults, overridden by the `COLINUX_SETUP_HTTP_*` environment variables.
    pub fn from_env() -> Net {
        let num = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        Net {
            timeout: Duration::from_secs(num("COLINUX_SETUP_HTTP_TIMEOUT_SECS", 30).max(1)),
            retries: u32::try_from(num("COLINUX_SETUP_HTTP_RETRIES", 5)).unwrap_or(u32::MAX),
            backoff: Duration::from_millis(num("COLINUX_SETUP_HTTP_BACKOFF_MS", 500)),
        }
    }
}

/// What a download tells the one who shows it.
pub trait Sink {
    /// A download begins (a file's kit path, or kit.toml).
    fn begin(&mut self, what: &str, size: Option<u64>);
    /// Bytes of the file done, of its total.
    fn progress(&mut self, done: u64, total: u64);
    /// A failed attempt that will be retried (the message says after how long).
    fn retry(&mut self, message: &str);
}

/// What one file's fetch cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fetched {
    /// Requests made.
    pub requests: u32,
    /// Body bytes received (more than the file's size when a resume or restart happened).
    pub received: u64,
}

/// The client and its settings.
pub struct Http {
    client: Client,
    net: Net,
}

impl Http {
    /// Builds the client: rustls with the platform's trust store, proxies from the
    /// environment (and the Windows settings), the timeouts of `net`.
    pub fn new(net: Net) -> Result<Http, DownloadError> {
        // reqwest takes the process-wide provider; a second install (tests, `kit verify`
        // after an install) finds one already there, which is the same one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .user_agent(concat!("colinux-setup/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(net.timeout)
            // The blocking client applies this to each wait (the answer's head, each read
            // of the body), not to the whole transfer.
            .timeout(net.timeout)
            .build()
            .map_err(|e| DownloadError::Client {
                detail: e.to_string(),
            })?;
        Ok(Http { client, net })
    }

    /// A small document (kit.toml), at most `limit` bytes, with retries; returns it and
    /// the number of requests made.
    pub fn get_small(
        &self,
        url: &str,
        limit: u64,
        sink: &mut dyn Sink,
        interrupt: &AtomicBool,
    ) -> Result<(Vec<u8>, u32), DownloadError> {
        self.retry(url, sink, interrupt, |_| {
            let resp = self.send(url, None).map_err(|e| (e, false))?;
            let status = resp.status();
            if !status.is_success() {
                return Err((status_error(url, status), false));
            }
            let mut body = Vec::new();
            resp.take(limit.saturating_add(1))
                .read_to_end(&mut body)
                .map_err(|e| (classify_io(url, &e, 0, 0, self.net.timeout), false))?;
            if body.len() as u64 > limit {
                return Err((
                    DownloadError::TooLarge {
                        url: url.to_owned(),
                        limit,
                    },
                    false,
                ));
            }
            Ok(body)
        })
    }

    /// Fetches `url` into `part`, resuming what `part` already holds, until it has
    /// `size` bytes; returns their sha256 (lowercase hex). More bytes than `size`, or a
    /// server that announces another size, is a [`DownloadError::Mismatch`] with
    /// `path` as the kit path; the caller deletes `part` then.
    pub fn fetch(
        &self,
        url: &str,
        path: &str,
        part: &Path,
        (size, sha256): (u64, &str),
        sink: &mut dyn Sink,
        interrupt: &AtomicBool,
    ) -> Result<(String, Fetched), DownloadError> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(part)
            .map_err(|e| DownloadError::io(part, e))?;
        let mut have = file
            .metadata()
            .map_err(|e| DownloadError::io(part, e))?
            .len();
        let mut hasher = Sha256::new();
        if have > size {
            restart(&mut file, part, &mut have, &mut hasher)?;
        } else if have > 0 {
            // A partial file from an earlier run: hash it once, then resume after it.
            let mut r = (&file).take(have);
            io::copy(&mut r, &mut hasher).map_err(|e| DownloadError::io(part, e))?;
        }
        file.seek(SeekFrom::Start(have))
            .map_err(|e| DownloadError::io(part, e))?;
        sink.progress(have, size);
        let mut received = 0u64;
        let ((), requests) = self.retry(url, sink, interrupt, |sink| {
            let before = have;
            let r = self.attempt(
                url,
                path,
                (&mut file, part),
                (&mut have, &mut hasher, &mut received),
                (size, sha256),
                sink,
                interrupt,
            );
            r.map_err(|e| (e, have > before))
        })?;
        file.flush().map_err(|e| DownloadError::io(part, e))?;
        Ok((
            super::hex(&hasher.finalize()),
            Fetched { requests, received },
        ))
    }

    /// One request: from `have` to the end, appended to the file and the hash.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        url: &str,
        path: &str,
        (file, part): (&mut File, &Path),
        (have, hasher, received): (&mut u64, &mut Sha256, &mut u64),
        (size, sha256): (u64, &str),
        sink: &mut dyn Sink,
        interrupt: &AtomicBool,
    ) -> Result<(), DownloadError> {
        if *have == size {
            return Ok(());
        }
        let mut resp = self.send(url, (*have > 0).then_some(*have))?;
        let status = resp.status();
        match status {
            StatusCode::PARTIAL_CONTENT if *have > 0 => {
                let got = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if !range_fits(&got, *have, size) {
                    restart(file, part, have, hasher)?;
                    return Err(DownloadError::BadRange {
                        url: url.to_owned(),
                        from: 0,
                        got,
                    });
                }
            }
            StatusCode::OK => {
                // The server ignored the range (or this is the first request).
                if *have > 0 {
                    restart(file, part, have, hasher)?;
                    sink.retry(&format!(
                        "{url}: the server does not resume (it answered 200 to a range request); fetching the whole file again"
                    ));
                }
                if let Some(n) = resp.content_length()
                    && n != size
                {
                    return Err(DownloadError::Mismatch {
                        path: path.to_owned(),
                        url: url.to_owned(),
                        expected_size: size,
                        expected_sha256: sha256.to_owned(),
                        actual: format!("{n} bytes (announced by the server; not fetched)"),
                    });
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                restart(file, part, have, hasher)?;
                return Err(DownloadError::BadRange {
                    url: url.to_owned(),
                    from: 0,
                    got: "416 Range Not Satisfiable".to_owned(),
                });
            }
            s => return Err(status_error(url, s)),
        }
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if interrupt.load(Ordering::SeqCst) {
                return Err(DownloadError::Cancelled {
                    url: url.to_owned(),
                });
            }
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(classify_io(url, &e, *have, size, self.net.timeout)),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            if *have + n as u64 > size {
                return Err(DownloadError::Mismatch {
                    path: path.to_owned(),
                    url: url.to_owned(),
                    expected_size: size,
                    expected_sha256: sha256.to_owned(),
                    actual: format!("more than {size} bytes (the transfer was stopped)"),
                });
            }
            file.write_all(chunk)
                .map_err(|e| DownloadError::io(part, e))?;
            hasher.update(chunk);
            *have += n as u64;
            *received += n as u64;
            sink.progress(*have, size);
        }
        if *have < size {
            return Err(DownloadError::Transfer {
                url: url.to_owned(),
                done: *have,
                total: size,
                detail: "the server closed the connection early".to_owned(),
            });
        }
        Ok(())
    }

    /// Sends a GET, from byte `from` on when given.
    fn send(&self, url: &str, from: Option<u64>) -> Result<Response, DownloadError> {
        let mut req = self.client.get(url);
        if let Some(from) = from {
            req = req.header(RANGE, format!("bytes={from}-"));
        }
        req.send().map_err(|e| classify(url, &e, self.net.timeout))
    }

    /// Runs `attempt` until it succeeds, fails for good, or fails `retries` times in a
    /// row without progress (its error's bool), waiting longer after each failure in a
    /// row. Returns the value and the number of requests.
    fn retry<U>(
        &self,
        url: &str,
        sink: &mut dyn Sink,
        interrupt: &AtomicBool,
        mut attempt: impl FnMut(&mut dyn Sink) -> Result<U, (DownloadError, bool)>,
    ) -> Result<(U, u32), DownloadError> {
        let mut requests = 0u32;
        let mut in_a_row = 0u32;
        loop {
            requests += 1;
            let (e, progressed) = match attempt(sink) {
                Ok(v) => return Ok((v, requests)),
                Err(f) => f,
            };
            in_a_row = if progressed { 0 } else { in_a_row + 1 };
            if !e.retryable() || in_a_row > self.net.retries || requests >= MAX_ATTEMPTS {
                return Err(if requests > 1 {
                    DownloadError::GaveUp {
                        attempts: requests,
                        last: Box::new(e),
                    }
                } else {
                    e
                });
            }
            let wait = self
                .net
                .backoff
                .saturating_mul(1u32 << in_a_row.saturating_sub(1).min(16))
                .min(MAX_BACKOFF);
            sink.retry(&format!("{e}; retrying in {:.1} s", wait.as_secs_f64()));
            sleep(wait, interrupt).map_err(|()| DownloadError::Cancelled {
                url: url.to_owned(),
            })?;
        }
    }
}

/// Waits, checking Ctrl-C every tenth of a second.
fn sleep(d: Duration, interrupt: &AtomicBool) -> Result<(), ()> {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() {
        if interrupt.load(Ordering::SeqCst) {
            return Err(());
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left = left.saturating_sub(s);
    }
    Ok(())
}

/// Empties the partial file: the next attempt fetches the whole file.
fn restart(
    file: &mut File,
    part: &Path,
    have: &mut u64,
    hasher: &mut Sha256,
) -> Result<(), DownloadError> {
    file.set_len(0).map_err(|e| DownloadError::io(part, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| DownloadError::io(part, e))?;
    *have = 0;
    *hasher = Sha256::new();
    Ok(())
}

/// Whether `Content-Range: bytes FROM-LAST/SIZE` is the rest of our file: it starts at
/// `from`, ends at the last byte, and the total (when given) is kit.toml's size.
fn range_fits(header: &str, from: u64, size: u64) -> bool {
    let Some(rest) = header.trim().strip_prefix("bytes ") else {
        return false;
    };
    let Some((span, total)) = rest.split_once('/') else {
        return false;
    };
    let Some((first, last)) = span.split_once('-') else {
        return false;
    };
    let total_ok = total == "*" || total.parse::<u64>() == Ok(size);
    first.parse::<u64>() == Ok(from)
        && last.parse::<u64>() == Ok(size.saturating_sub(1))
        && total_ok
}

fn status_error(url: &str, status: StatusCode) -> DownloadError {
    DownloadError::Status {
        url: url.to_owned(),
        status: status.as_u16(),
    }
}

/// Sorts a reqwest failure into DNS, TLS, timeout, connect or transfer, by walking its
/// cause chain: rustls errors are typed; hyper-util's resolver failure is only known by
/// its words ("dns error").
fn classify(url: &str, e: &reqwest::Error, timeout: Duration) -> DownloadError {
    let mut words = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = tls_error(err) {
            return DownloadError::Tls {
                url: url.to_owned(),
                detail: t,
            };
        }
        words.push(err.to_string());
        cur = err.source();
    }
    let detail = words.last().cloned().unwrap_or_default();
    // hyper-rustls reports a server that hangs up mid-handshake as an I/O error.
    if words.iter().any(|w| w.contains("tls handshake")) {
        return DownloadError::Tls {
            url: url.to_owned(),
            detail,
        };
    }
    if words.iter().any(|w| w.starts_with("dns error")) {
        DownloadError::Dns {
            url: url.to_owned(),
            detail,
        }
    } else if e.is_timeout() {
        DownloadError::Timeout {
            url: url.to_owned(),
            secs: timeout.as_secs(),
        }
    } else if e.is_connect() {
        DownloadError::Connect {
            url: url.to_owned(),
            detail,
        }
    } else {
        DownloadError::Transfer {
            url: url.to_owned(),
            done: 0,
            total: 0,
            detail,
        }
    }
}

/// A rustls error in `err` or in the io::Errors it wraps (tokio-rustls wraps it in an
/// io::Error, hyper-rustls wraps that in another, and io::Error's `source()` skips the
/// error it wraps, so look inside by hand).
fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = err;
    loop {
        if let Some(t) = cur.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        cur = cur.downcast_ref::<io::Error>()?.get_ref()?;
    }
}

/// Sorts a failed read of a body.
fn classify_io(
    url: &str,
    e: &io::Error,
    done: u64,
    total: u64,
    timeout: Duration,
) -> DownloadError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>());
    if e.kind() == io::ErrorKind::TimedOut || inner.is_some_and(reqwest::Error::is_timeout) {
        return DownloadError::Timeout {
            url: url.to_owned(),
            secs: timeout.as_secs(),
        };
    }
    let mut detail = e.to_string();
    let mut cur = inner.and_then(|i| std::error::Error::source(i));
    while let Some(s) = cur {
        detail = s.to_string();
        cur = s.source();
    }
    DownloadError::Transfer {
        url: url.to_owned(),
        done,
        total,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_is_trusted_only_for_the_exact_rest_of_the_file() {
        assert!(range_fits("bytes 100-999/1000", 100, 1000));
        assert!(range_fits("bytes 100-999/*", 100, 1000));
        assert!(!range_fits("bytes 0-999/1000", 100, 1000));
        assert!(!range_fits("bytes 100-998/1000", 100, 1000));
        assert!(!range_fits("bytes 100-999/2000", 100, 1000));
        assert!(!range_fits("", 100, 1000));
        assert!(!range_fits("items 100-999/1000", 100, 1000));
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let s = |status| DownloadError::Status {
            url: "u".into(),
            status,
        };
        assert!(s(503).retryable());
        assert!(s(429).retryable());
        assert!(!s(404).retryable());
        assert!(!s(403).retryable());
        let dns = DownloadError::Dns {
            url: "u".into(),
            detail: "d".into(),
        };
        assert!(!dns.retryable());
    }
}
