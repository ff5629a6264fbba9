//! Kits from a URL (`--kit URL`, `kit verify URL`): read `kit.toml` from the URL, fetch
//! the files this host needs into a cache keyed by sha256, verify each one against
//! kit.toml, and make a local kit folder from the cache that the rest of the installer
//! reads exactly as it reads `--kit DIR`.
//!
//! Files live in [`cache`]; [`http`] fetches them (timeouts, retries with backoff,
//! resume with `Range`, proxies from the environment). A file already in the cache with
//! the right size and digest is not fetched again: a second install of the same kit
//! makes one request, for kit.toml, which is always read from the URL because it is
//! what says which files the kit holds now (a kit republished at the same URL must not
//! be installed from a stale list). A download that does not match kit.toml is deleted
//! from the cache and ends the run before anything is installed; a transfer that broke
//! off is kept as `<sha256>.part` and resumed by the next attempt or run.
//!
//! Files listed for another host (`host = "windows"` on Linux and the reverse) are not
//! fetched; the kit folder's kit.toml then lists only the files it holds.

pub mod cache;
pub mod error;
pub mod http;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use driver_bundle::manifest::{Host, KitFile, Manifest, ManifestError};
use reqwest::Url;
use sha2::{Digest, Sha256};

pub use error::DownloadError;
pub use http::{Net, Sink};

use crate::progress::Reporter;
use crate::state::RunLog;

/// The largest kit.toml we read, the same as for a local kit (a kit of 100,000 files
/// lists about 20 MB).
const MANIFEST_LIMIT: u64 = driver_bundle::manifest::MANIFEST_LIMIT;

/// Whether a `--kit` value is a URL (http or https) rather than a folder.
pub fn is_url(s: &str) -> bool {
    let l = s.trim_start().to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// Where the cache is and how the network is used.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cache folder.
    pub cache: PathBuf,
    /// Timeouts and retries.
    pub net: Net,
}

impl Options {
    /// `--cache DIR` (or the environment's and the default cache), and the network
    /// settings from the environment.
    pub fn new(cache: Option<&Path>) -> Options {
        Options {
            cache: cache::location(cache),
            net: Net::from_env(),
        }
    }
}

/// A kit fetched from a URL into a local folder.
#[derive(Debug)]
pub struct KitFromUrl {
    /// The local kit folder (in the cache), for `--kit DIR`.
    pub dir: PathBuf,
    /// Its manifest (the files of this host).
    pub manifest: Manifest,
    /// Files downloaded in this run.
    pub fetched: usize,
    /// Files found in the cache.
    pub cached: usize,
    /// Files listed for another host, not fetched.
    pub skipped: usize,
    /// Body bytes received for the files (resumes and restarts included).
    pub received: u64,
    /// HTTP requests made, kit.toml's included.
    pub requests: u32,
}

/// Fetches the kit at `url` (a folder URL, or the URL of its kit.toml) into the cache
/// and returns its local folder. Nothing outside the cache is touched.
pub fn fetch_kit(
    url: &str,
    opts: &Options,
    sink: &mut dyn Sink,
    interrupt: &AtomicBool,
) -> Result<KitFromUrl, DownloadError> {
    let (manifest_url, base) = urls(url)?;
    let client = http::Http::new(opts.net)?;
    sink.begin("kit.toml", None);
    let (bytes, manifest_requests) =
        client.get_small(manifest_url.as_str(), MANIFEST_LIMIT, sink, interrupt)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        DownloadError::Manifest(ManifestError::Invalid {
            origin: manifest_url.to_string(),
            line: 1,
            column: 1,
            message: "not UTF-8 text; kit.toml is a TOML file".to_owned(),
        })
    })?;
    let full = Manifest::parse(&text, manifest_url.as_str())?;
    let host = Host::current();
    let (wanted, other): (Vec<KitFile>, Vec<KitFile>) =
        full.files.iter().cloned().partition(|f| f.host.fits(host));
    let cache = cache::Cache::open(&opts.cache)?;
    let mut out = KitFromUrl {
        dir: PathBuf::new(),
        manifest: Manifest {
            files: wanted,
            ..full.clone()
        },
        fetched: 0,
        cached: 0,
        skipped: other.len(),
        received: 0,
        requests: manifest_requests,
    };
    for f in &out.manifest.files {
        if cache.has(f)? {
            out.cached += 1;
            continue;
        }
        let file_url = file_url(&base, &f.path);
        sink.begin(&f.path, Some(f.size));
        let part = cache.part(&f.sha256);
        let got = client.fetch(
            file_url.as_str(),
            &f.path,
            &part,
            (f.size, &f.sha256),
            sink,
            interrupt,
        );
        match got {
            Ok((digest, st)) => {
                out.requests += st.requests;
                out.received += st.received;
                if digest != f.sha256 {
                    cache::remove(&part)?;
                    return Err(DownloadError::Mismatch {
                        path: f.path.clone(),
                        url: file_url.to_string(),
                        expected_size: f.size,
                        expected_sha256: f.sha256.clone(),
                        actual: format!("{} bytes with sha256 {digest}", f.size),
                    });
                }
                cache.commit(&f.sha256)?;
                out.fetched += 1;
            }
            Err(e) => {
                // A wrong file goes; what arrived of a right one stays for the resume,
                // unless nothing did.
                let wrong = is_mismatch(&e);
                let empty = std::fs::metadata(&part).is_ok_and(|m| m.len() == 0);
                if wrong || empty {
                    cache::remove(&part)?;
                }
                return Err(e);
            }
        }
    }
    let text = if other.is_empty() {
        text
    } else {
        out.manifest.to_toml()
    };
    out.dir = cache.materialise(&text, &out.manifest.files)?;
    Ok(out)
}

/// The install's hook: when the `KIT` answer is a URL, fetches the kit and makes the
/// answer its local folder (so the plan, the kit checks and the first boot read a folder
/// as for `--kit DIR`); returns the URL, or `None` when `KIT` is not a URL.
pub fn kit_answer(
    answers: &mut crate::plan::Answers,
    cache: Option<&Path>,
    json: bool,
    log: &mut RunLog,
    interrupt: &AtomicBool,
) -> Result<Option<String>, DownloadError> {
    let Some(kit) = answers.get("KIT").filter(|a| is_url(&a.value)).cloned() else {
        return Ok(None);
    };
    let opts = Options::new(cache);
    log.line(&format!(
        "KIT={} ({}): fetching into the cache {}",
        kit.value,
        kit.origin,
        opts.cache.display()
    ));
    let mut rep = Reporter::new(json);
    let got = fetch_kit(
        &kit.value,
        &opts,
        &mut Shown {
            rep: &mut rep,
            log: Some(&mut *log),
        },
        interrupt,
    );
    rep.finish();
    let k = got?;
    log.line(&format!(
        "KIT={}: {} file(s) downloaded ({} bytes received), {} from the cache, {} for another host skipped; {} request(s); kit folder {}",
        kit.value,
        k.fetched,
        k.received,
        k.cached,
        k.skipped,
        k.requests,
        k.dir.display()
    ));
    answers.0.insert(
        "KIT".to_owned(),
        crate::plan::Answer {
            value: k.dir.display().to_string(),
            origin: format!("{}, fetched from {}", kit.origin, kit.value),
        },
    );
    Ok(Some(kit.value))
}

/// Why [`verify_source`] gave no folder.
#[derive(Debug)]
pub enum SourceError {
    /// A file did not match kit.toml (or kit.toml was not valid): a finding about the
    /// kit, already printed (a checker's exit 1).
    Mismatch,
    /// The kit could not be fetched (1603); the error says why.
    Unfetched(anyhow::Error),
}

/// `kit verify URL`'s hook: a folder is returned as it is; a URL is fetched into the
/// default cache (each file checked against kit.toml as it arrives) and its local folder
/// returned for the folder checks. A file that does not match is the checker's finding
/// (exit 1, printed on stdout like the folder's problems); a network failure is not a
/// finding about the kit (exit 1603). The command maps [`SourceError`] to those codes:
/// this module returns its own error, not the command layer's outcome.
pub fn verify_source(given: &Path, json: bool) -> Result<PathBuf, SourceError> {
    let text = given.to_string_lossy();
    if !is_url(&text) {
        return Ok(given.to_path_buf());
    }
    let interrupt = AtomicBool::new(false);
    let mut rep = Reporter::new(false);
    let got = fetch_kit(
        &text,
        &Options::new(None),
        &mut Shown {
            rep: &mut rep,
            log: None,
        },
        &interrupt,
    );
    rep.finish();
    match got {
        Ok(k) => Ok(k.dir),
        Err(e) if is_mismatch(&e) => {
            if json {
                crate::progress::emit(
                    &serde_json::json!({"kit": text, "ok": false, "problems": [e.to_string()]}),
                );
            } else {
                crate::out::outln!("{e}");
            }
            Err(SourceError::Mismatch)
        }
        Err(e) => Err(SourceError::Unfetched(
            anyhow::Error::new(e)
                .context(format!("kit verify {text}: the kit could not be fetched")),
        )),
    }
}

/// Whether the failure is a file that does not match kit.toml (or a kit.toml that is
/// not valid): a finding about the kit, not about the network.
fn is_mismatch(e: &DownloadError) -> bool {
    match e {
        DownloadError::Mismatch { .. } | DownloadError::Manifest(_) => true,
        DownloadError::GaveUp { last, .. } => is_mismatch(last),
        _ => false,
    }
}

/// kit.toml's URL and the base URL its paths are relative to. `http://h/k/` and
/// `http://h/k` both mean `http://h/k/kit.toml`; a URL that ends in `kit.toml` names it.
fn urls(url: &str) -> Result<(Url, Url), DownloadError> {
    let bad = |reason: &str| DownloadError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut u = Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("only http and https are fetched"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    u.set_fragment(None);
    let is_manifest = u
        .path_segments()
        .and_then(|mut s| s.next_back())
        .is_some_and(|last| last == driver_bundle::manifest::MANIFEST_NAME);
    let mut base = u.clone();
    base.set_query(None);
    if let Ok(mut segs) = base.path_segments_mut() {
        if is_manifest {
            segs.pop();
        }
        // A trailing empty segment: the base is a folder.
        segs.pop_if_empty().push("");
    }
    let manifest = if is_manifest {
        u
    } else {
        let mut m = base.clone();
        if let Ok(mut segs) = m.path_segments_mut() {
            segs.pop_if_empty()
                .push(driver_bundle::manifest::MANIFEST_NAME);
        }
        m
    };
    Ok((manifest, base))
}

/// The URL of a kit path: each `/`-separated part percent-encoded under the base.
fn file_url(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    if let Ok(mut segs) = u.path_segments_mut() {
        segs.pop_if_empty().extend(path.split('/'));
    }
    u
}

/// Lowercase hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    driver_bundle::manifest::hex(bytes)
}

/// Shows a download with the installer's reporter (bar, lines or NDJSON) and writes
/// what happened to the run's log.
pub struct Shown<'a> {
    /// The reporter.
    pub rep: &'a mut Reporter,
    /// The run's log, if there is one yet.
    pub log: Option<&'a mut RunLog>,
}

impl Sink for Shown<'_> {
    fn begin(&mut self, what: &str, size: Option<u64>) {
        self.rep.phase(&format!("download {what}"));
        if let (Some(log), Some(size)) = (self.log.as_deref_mut(), size) {
            log.line(&format!("download {what} ({size} bytes)"));
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        self.rep.progress(done, total);
    }

    fn retry(&mut self, message: &str) {
        self.rep.warn(message);
        if let Some(log) = self.log.as_deref_mut() {
            log.line(&format!("warning: {message}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kit_url_names_its_folder_or_its_kit_toml() {
        for (given, manifest, base) in [
            ("http://h/k/", "http://h/k/kit.toml", "http://h/k/"),
            ("http://h/k", "http://h/k/kit.toml", "http://h/k/"),
            (
                "http://h:81/k/kit.toml",
                "http://h:81/k/kit.toml",
                "http://h:81/k/",
            ),
            ("https://h", "https://h/kit.toml", "https://h/"),
        ] {
            let (m, b) = urls(given).expect(given);
            assert_eq!((m.as_str(), b.as_str()), (manifest, base), "{given}");
        }
        let (_, b) = urls("http://h/k/").expect("url");
        assert_eq!(
            file_url(&b, "dist/a b#1.txt").as_str(),
            "http://h/k/dist/a%20b%231.txt"
        );
    }

    #[test]
    fn only_http_and_https_urls_are_fetched() {
        for bad in ["ftp://h/k/", "http://", "file:///tmp/k"] {
            assert!(
                matches!(urls(bad), Err(DownloadError::BadUrl { .. })),
                "{bad}"
            );
        }
        assert!(is_url("HTTPS://h/k"));
        assert!(!is_url("/srv/kit"));
        assert!(!is_url(r"\\server\share\kit"));
    }
}
