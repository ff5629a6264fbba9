//! What can go wrong when a kit comes from a URL, as one typed error: every variant
//! names the URL (and the kit path, for a file), and says what to do where there is
//! something to do. [`DownloadError::retryable`] is the retry policy in one place.

use std::path::PathBuf;

/// A failed kit download.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The text given as a URL is not one we can fetch.
    #[error(
        "{url}: not a usable kit URL ({reason}); give http://HOST/PATH or https://HOST/PATH, or a folder"
    )]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The host name did not resolve.
    #[error(
        "{url}: cannot resolve the host name ({detail}); check the URL and this machine's DNS settings, or set HTTPS_PROXY/HTTP_PROXY if this network reaches the web through a proxy"
    )]
    Dns {
        /// The URL.
        url: String,
        /// The resolver's words.
        detail: String,
    },
    /// The TLS handshake failed (untrusted or wrong certificate, or no TLS on that port).
    #[error(
        "{url}: TLS failure ({detail}); the server's certificate is not trusted by this machine, names another host, or the server does not speak TLS on that port"
    )]
    Tls {
        /// The URL.
        url: String,
        /// rustls' words.
        detail: String,
    },
    /// The HTTP client could not be set up (no TLS trust store, bad proxy variable).
    #[error("cannot set up the HTTP client: {detail}; check HTTPS_PROXY, HTTP_PROXY and NO_PROXY")]
    Client {
        /// reqwest's words.
        detail: String,
    },
    /// No TCP connection (refused, unreachable, reset while connecting).
    #[error("{url}: cannot connect ({detail}); check the URL, the network and any proxy settings")]
    Connect {
        /// The URL.
        url: String,
        /// The system's words.
        detail: String,
    },
    /// Nothing arrived within the timeout.
    #[error(
        "{url}: no answer within {secs} s (timeout); the server or a proxy hangs; for a slow link raise COLINUX_SETUP_HTTP_TIMEOUT_SECS"
    )]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout in seconds.
        secs: u64,
    },
    /// The server answered with an error status.
    #[error("{url}: the server answered {status}{}", status_hint(*status))]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The transfer broke off (connection reset or closed early).
    #[error("{url}: the transfer broke off after {done} of {total} bytes ({detail})")]
    Transfer {
        /// The URL.
        url: String,
        /// Bytes of the file on disk so far.
        done: u64,
        /// Bytes expected.
        total: u64,
        /// What the connection said.
        detail: String,
    },
    /// The server answered a range request with a range we did not ask for.
    #[error("{url}: the server sent the range {got:?} for a resume from byte {from}")]
    BadRange {
        /// The URL.
        url: String,
        /// Where the resume started.
        from: u64,
        /// The Content-Range it sent.
        got: String,
    },
    /// The downloaded file is not the one kit.toml lists.
    #[error(
        "{path} ({url}): the download does not match kit.toml: expected {expected_size} bytes with sha256 {expected_sha256}, got {actual}; it was deleted from the cache and nothing was installed (the mirror is damaged or kit.toml is out of date)"
    )]
    Mismatch {
        /// The kit path.
        path: String,
        /// The URL it came from.
        url: String,
        /// Size listed in kit.toml.
        expected_size: u64,
        /// Digest listed in kit.toml.
        expected_sha256: String,
        /// What arrived: "N bytes with sha256 D", or the wrong size the server announced
        /// or sent (then no digest is computed: the transfer was stopped).
        actual: String,
    },
    /// kit.toml at the URL is not a valid manifest.
    #[error("{0}")]
    Manifest(#[from] driver_bundle::manifest::ManifestError),
    /// kit.toml is larger than any manifest should be.
    #[error("{url}: larger than {limit} bytes; this is not a kit.toml")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A file in the cache could not be read, written or linked.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Ctrl-C.
    #[error(
        "{url}: download cancelled (Ctrl-C); what arrived is kept in the cache and the next run resumes it"
    )]
    Cancelled {
        /// The URL.
        url: String,
    },
    /// Retries did not help.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        /// How many requests were made.
        attempts: u32,
        /// The last failure.
        last: Box<DownloadError>,
    },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        404 | 410 => {
            " (not found): check the kit URL; kit.toml and every file it lists must be under it"
        }
        401 | 403 => " (access denied): this kit URL needs rights this machine does not have",
        500..=599 => {
            " (server error): the server or a proxy failed; try again later or use another mirror"
        }
        _ => "",
    }
}

impl DownloadError {
    /// Whether another attempt could succeed: broken or refused connections, timeouts,
    /// server errors and rate limits. A missing file, a TLS or DNS failure and a wrong
    /// file will fail the same way again.
    pub fn retryable(&self) -> bool {
        match self {
            DownloadError::Connect { .. }
            | DownloadError::Timeout { .. }
            | DownloadError::Transfer { .. }
            | DownloadError::BadRange { .. } => true,
            DownloadError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// Wraps an I/O error with its path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DownloadError {
        DownloadError::Io {
            path: path.into(),
            source,
        }
    }
}
