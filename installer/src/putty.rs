//! A PuTTY saved session that opens ssh to an installed machine (what the Blackfin coLinux kit manual's
//! installer left to the user: "connect PuTTY to localhost port NNNN").
//!
//! The session is derived from the machine's own config.txt, so it is true whatever
//! profile, answer file or property made the machine: the first slirp `ethN` with a TCP
//! redirection to guest port 22 gives `localhost:HOSTPORT`; without one, a `tuntap`
//! adapter with the guest address recorded in install-state.json gives `GUEST:22`.
//!
//! PuTTY keeps sessions per user: on Windows under
//! `HKCU\Software\SimonTatham\PuTTY\Sessions\NAME`, on Unix in `$PUTTYDIR/sessions/NAME`
//! (default `~/.putty`), one `Key=Value` line per setting. NAME is escaped the way PuTTY
//! escapes it (`%XX` for space, `\`, `*`, `?`, `%`, control and non-ASCII bytes, and a
//! leading `.`), so PuTTY lists it under the name given. Only the keys that make the
//! connection are written; PuTTY takes its defaults for the rest.

use std::path::Path;

pub mod step;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

/// The session name when none is given.
pub const DEFAULT_NAME: &str = "coLinux";

/// What the session connects to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The name PuTTY lists.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login name, when the machine has a user besides root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Where the address came from (`config.txt eth0 slirp tcp:2222:22`, ...).
    pub from: String,
}

impl Session {
    /// Whether `stored` (as [`Store::read`] gives it) holds exactly these settings.
    pub fn is_stored_as(&self, stored: &[(String, String)]) -> bool {
        let mine = self.settings();
        stored.len() == mine.len()
            && mine
                .iter()
                .all(|(k, v, _)| stored.iter().any(|(sk, sv)| sk == k && sv == v))
    }

    /// The settings PuTTY reads: (key, value, is a number).
    pub fn settings(&self) -> Vec<(&'static str, String, bool)> {
        let mut s = vec![
            ("HostName", self.host.clone(), false),
            ("PortNumber", self.port.to_string(), true),
            ("Protocol", "ssh".to_owned(), false),
        ];
        if let Some(u) = &self.user {
            s.push(("UserName", u.clone(), false));
        }
        s
    }
}

/// Checks a session name: 1..=128 characters, no `/` (PuTTY's own limit is the
/// registry's; `/` would make a folder on Unix).
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 128 {
        bail!("session name `{name}`: give 1 to 128 characters");
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        bail!("session name `{name}`: no `/` or control characters");
    }
    Ok(())
}

/// PuTTY's escaping of a session name for the registry and file names.
pub fn escape(name: &str) -> String {
    let mut out = String::new();
    for (i, b) in name.bytes().enumerate() {
        let plain = b > b' ' && b <= b'~' && !matches!(b, b'\\' | b'*' | b'?' | b'%');
        if plain && !(b == b'.' && i == 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The session for the machine in `prefix`, read from its config.txt (and its
/// install-state for a TAP guest's address). `user` is the login name.
pub fn for_machine(prefix: &Path, name: &str, user: Option<String>) -> Result<Session> {
    let path = prefix.join("config.txt");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (is a machine installed in {}?)",
            path.display(),
            prefix.display()
        )
    })?;
    let tap_guest = crate::state::InstallState::read(prefix)
        .ok()
        .flatten()
        .and_then(|s| crate::tap::record(&s).ok().flatten())
        .and_then(|t| t.guest_ip);
    let origin = path.display().to_string();
    let parsed = config_txt::parse(&bytes, &origin);
    from_config(&parsed.config, &origin, tap_guest, name, user)
}

/// The session for a config.txt (`origin` names it in messages); `tap_guest` is the
/// guest's address on the machine's TAP adapter, when it has one.
pub fn from_config(
    config: &config_txt::Config,
    origin: &str,
    tap_guest: Option<std::net::Ipv4Addr>,
    name: &str,
    user: Option<String>,
) -> Result<Session> {
    check_name(name)?;
    for (n, nic) in &config.eth {
        let config_txt::Nic::Slirp { redirs, .. } = nic else {
            continue;
        };
        let Ok(r) = config_txt::slirp::parse_redirections(redirs) else {
            continue;
        };
        let ssh = r.list.iter().find(|r| {
            r.protocol == config_txt::slirp::Protocol::Tcp
                && (r.guest_port..r.guest_port.saturating_add(r.count.max(1))).contains(&22)
        });
        if let Some(r) = ssh {
            let port = u16::try_from(i64::from(r.host_port) + 22 - i64::from(r.guest_port))
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    anyhow!(
                        "{origin}: eth{n}: host port {} is not a TCP port",
                        r.host_port
                    )
                })?;
            return Ok(Session {
                name: name.to_owned(),
                host: "localhost".to_owned(),
                port,
                user,
                from: format!("{origin} eth{n} slirp {r}"),
            });
        }
    }
    let has_tuntap = config
        .eth
        .values()
        .any(|n| matches!(n, config_txt::Nic::Tuntap { .. }));
    if let (true, Some(ip)) = (has_tuntap, tap_guest) {
        return Ok(Session {
            name: name.to_owned(),
            host: ip.to_string(),
            port: 22,
            user,
            from: format!("the guest's address {ip} on the TAP adapter"),
        });
    }
    bail!(
        "{origin}: no network reaches the guest's ssh port: no slirp ethN redirects a TCP port to guest port 22 and no TAP adapter has a guest address; \
         give one with the answer SLIRP=tcp:2222:22 (or a TAP adapter) and install again"
    )
}

/// Where sessions are kept: on Windows a registry hive (`HKCU`, or `HKU\SID` for a user
/// other than the one running, e.g. the user who started setup.msi while the install
/// runs as LocalSystem); elsewhere PuTTY's sessions folder. Recorded in
/// install-state.json as its text, so uninstall removes the session from the same place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Store(pub String);

impl Store {
    /// The running user's store.
    pub fn current() -> Result<Store> {
        #[cfg(windows)]
        {
            Ok(Store("HKCU".to_owned()))
        }
        #[cfg(not(windows))]
        {
            Ok(Store(unix::dir()?.display().to_string()))
        }
    }

    /// The store of the user with security identifier `sid` (Windows only; the user's
    /// hive must be loaded, as it is while they run an install).
    pub fn user(sid: &str) -> Result<Store> {
        let ok = sid.len() <= 184
            && sid.strip_prefix("S-1-").is_some_and(|r| {
                !r.is_empty()
                    && r.split('-')
                        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            });
        if !ok {
            bail!("PUTTYUSER={sid}: not a Windows security identifier (S-1-5-21-...)");
        }
        if cfg!(windows) {
            Ok(Store(format!(r"HKU\{sid}")))
        } else {
            bail!(
                "PUTTYUSER={sid}: a user's registry hive exists only on Windows; on this host the session goes to the running user's PuTTY folder"
            )
        }
    }

    /// Where the session `name` is kept (the registry key or the file), for messages.
    pub fn location(&self, name: &str) -> String {
        if cfg!(windows) {
            format!(r"{}\{SESSIONS_KEY}\{}", self.0, escape(name))
        } else {
            Path::new(&self.0).join(escape(name)).display().to_string()
        }
    }

    /// Writes the session (replacing one of the same name).
    pub fn save(&self, s: &Session) -> Result<()> {
        check_name(&s.name)?;
        #[cfg(windows)]
        {
            windows::save(self, s)
        }
        #[cfg(not(windows))]
        {
            unix::save(self, s)
        }
    }

    /// Removes the session; `false` when there was none.
    pub fn remove(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        #[cfg(windows)]
        {
            windows::remove(self, name)
        }
        #[cfg(not(windows))]
        {
            unix::remove(self, name)
        }
    }

    /// The stored settings of a session, `None` when there is none.
    pub fn read(&self, name: &str) -> Result<Option<Vec<(String, String)>>> {
        check_name(name)?;
        #[cfg(windows)]
        {
            windows::read(self, name)
        }
        #[cfg(not(windows))]
        {
            unix::read(self, name)
        }
    }
}

/// PuTTY's sessions key under a user's hive.
pub const SESSIONS_KEY: &str = r"Software\SimonTatham\PuTTY\Sessions";

#[cfg(not(windows))]
mod unix {
    //! PuTTY's Unix storage: one file per session, `Key=Value` lines.

    use std::path::PathBuf;

    use super::*;

    /// `$PUTTYDIR/sessions`, else `~/.putty/sessions`.
    pub(super) fn dir() -> Result<PathBuf> {
        if let Some(d) = std::env::var_os("PUTTYDIR").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(d).join("sessions"));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow!("HOME is not set: cannot find PuTTY's ~/.putty folder"))?;
        Ok(PathBuf::from(home).join(".putty/sessions"))
    }

    pub(super) fn save(store: &Store, s: &Session) -> Result<()> {
        let d = Path::new(&store.0);
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        let mut text = String::new();
        for (k, v, _) in s.settings() {
            text.push_str(&format!("{k}={v}\n"));
        }
        crate::state::write_atomic(&d.join(escape(&s.name)), text.as_bytes())
    }

    pub(super) fn remove(store: &Store, name: &str) -> Result<bool> {
        let path = Path::new(&store.0).join(escape(name));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    pub(super) fn read(store: &Store, name: &str) -> Result<Option<Vec<(String, String)>>> {
        let path = Path::new(&store.0).join(escape(name));
        // A session file is a few hundred bytes; a FIFO or a huge file is not one.
        match crate::input::read_text(&path, 1 << 20, "a PuTTY session") {
            Ok(t) => Ok(Some(
                t.lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(anyhow::Error::new(e)),
        }
    }
}

#[cfg(windows)]
mod windows {
    //! PuTTY's Windows storage: a registry key per session (winreg).

    use super::*;
    use winreg::RegKey;
    use winreg::enums::{HKEY_CURRENT_USER, HKEY_USERS, KEY_READ};

    /// The hive's root key and the session's path below it.
    fn key(store: &Store, name: &str) -> (RegKey, String) {
        let session = format!(r"{SESSIONS_KEY}\{}", escape(name));
        match store.0.strip_prefix(r"HKU\") {
            Some(sid) => (RegKey::predef(HKEY_USERS), format!(r"{sid}\{session}")),
            None => (RegKey::predef(HKEY_CURRENT_USER), session),
        }
    }

    pub(super) fn save(store: &Store, s: &Session) -> Result<()> {
        let (root, path) = key(store, &s.name);
        let at = store.location(&s.name);
        let (k, _) = root
            .create_subkey(&path)
            .with_context(|| format!("creating {at}"))?;
        for (name, v, number) in s.settings() {
            let r = if number {
                let n: u32 = v.parse().unwrap_or(0);
                k.set_value(name, &n)
            } else {
                k.set_value(name, &v)
            };
            r.with_context(|| format!("writing {name} under {at}"))?;
        }
        Ok(())
    }

    pub(super) fn remove(store: &Store, name: &str) -> Result<bool> {
        let (root, path) = key(store, name);
        match root.delete_subkey_all(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", store.location(name))),
        }
    }

    pub(super) fn read(store: &Store, name: &str) -> Result<Option<Vec<(String, String)>>> {
        let (root, path) = key(store, name);
        let k = match root.open_subkey_with_flags(&path, KEY_READ) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("opening {}", store.location(name)));
            }
        };
        let mut out = Vec::new();
        for v in k.enum_values() {
            let (n, value) = v.with_context(|| format!("reading {}", store.location(name)))?;
            out.push((n, value.to_string()));
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_as_putty_does() {
        assert_eq!(escape("coLinux"), "coLinux");
        assert_eq!(escape("my machine"), "my%20machine");
        assert_eq!(escape(".hidden.name"), "%2Ehidden.name");
        assert_eq!(escape(r"a\b*c?d%e"), "a%5Cb%2Ac%3Fd%25e");
        assert_eq!(escape("é"), "%C3%A9");
    }

    #[test]
    fn only_security_identifiers_name_a_users_hive() {
        for bad in ["", "S-1-", "S-1-5-x", "root", r"S-1-5\x"] {
            assert!(Store::user(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Store::user("S-1-5-21-0-0-0-1000").is_ok(),
            cfg!(windows),
            "a SID is a hive on Windows only"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"x".repeat(129)).is_err());
        assert!(check_name("coLinux (home)").is_ok());
    }
}
