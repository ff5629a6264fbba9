//! Every answer key, once: the words an answer file, `--set`, the wizard and setup.msi's
//! public properties share (`RAMMB`, `SUBNET`, ...). The plan's key check and its "did
//! you mean" hint, the `msi` command's property list and `msi properties` (which the MSI
//! tests read) come from [`ALL`]; a unit test holds wix/main.wxs (its properties and
//! the provisioning action's command line) and scripts/build-msi (its secure
//! properties) to it, so a key added here and forgotten there fails the build's tests.

/// One answer key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// Its word, in upper case.
    pub name: &'static str,
    /// A public property of setup.msi too (passed to `msi install` or `msi uninstall`).
    pub msi: bool,
}

const fn key(name: &'static str, msi: bool) -> Key {
    Key { name, msi }
}

/// Every key, in the order the plan documents them.
pub const ALL: &[Key] = &[
    key("PROFILE", true),
    key("INSTALLDIR", true),
    key("MONITOR", true),
    key("RAMMB", true),
    key("ROOTMB", true),
    key("HOMEMB", true),
    key("SWAPMB", true),
    key("TAPNAME", true),
    key("SUBNET", true),
    key("NOFIRSTBOOT", true),
    key("MODULES", false),
    key("HOSTNAME", true),
    key("KIT", true),
    key("SLIRP", true),
    key("SLIRPHOST", false),
    key("SERIAL", true),
    key("STARTMENU", true),
    key("TASKS", false),
    key("ANSWERFILE", true),
    key("PURGE", true),
    key("TESTSIGNING", false),
    key("SERVICE", true),
    key("SERVICENAME", true),
    key("PUTTYSESSION", true),
    key("PUTTYUSER", false),
    key("DRIVERSIGNER", true),
    key("WSLNAME", false),
    // The machine's user, for a profile with `ask = true` (embedded-dev): the password
    // is hashed at once and only its hash is saved; never an MSI property, which would
    // put it in the installer's logs.
    key("USERNAME", false),
    key("USERPASSWORD", false),
    key("USERPASSWORDHASH", false),
];

/// The MSI passes this besides the answers: the installing user's SID, for the PuTTY
/// session in that user's registry (the server side runs as SYSTEM).
pub const MSI_USER_SID: &str = "USERSID";

/// Every key's word.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|k| k.name).collect()
}

/// The key of this word (upper case).
pub fn find(word: &str) -> Option<Key> {
    ALL.iter().copied().find(|k| k.name == word)
}

/// setup.msi's public properties: the keys that are properties, then [`MSI_USER_SID`].
pub fn msi_properties() -> Vec<&'static str> {
    ALL.iter()
        .filter(|k| k.msi)
        .map(|k| k.name)
        .chain([MSI_USER_SID])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WXS: &str = include_str!("../../wix/main.wxs");
    const BUILD_MSI: &str = include_str!("../../scripts/build-msi");

    /// The upper-case `<Property Id='...'/>` declarations of main.wxs.
    fn declared() -> Vec<&'static str> {
        WXS.split("<Property Id='")
            .skip(1)
            .filter_map(|rest| rest.split('\'').next())
            .filter(|id| id.chars().all(|c| c.is_ascii_uppercase()) && !id.starts_with("ARP"))
            .collect()
    }

    #[test]
    fn every_key_is_named_once_in_upper_case() {
        let mut seen = std::collections::BTreeSet::new();
        for k in ALL {
            assert!(seen.insert(k.name), "{} twice", k.name);
            assert!(k.name.chars().all(|c| c.is_ascii_uppercase()), "{}", k.name);
            assert_eq!(find(k.name), Some(*k));
        }
        assert_eq!(find("RAMMB").map(|k| k.msi), Some(true));
        assert_eq!(
            find("rammb"),
            None,
            "words are upper case; callers upper-case them"
        );
    }

    #[test]
    fn main_wxs_declares_and_passes_exactly_the_msi_keys() {
        let mut want: Vec<_> = ALL.iter().filter(|k| k.msi).map(|k| k.name).collect();
        let mut got = declared();
        want.sort_unstable();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, want, "wix/main.wxs <Property> declarations");
        // The provisioning's command line is its CustomActionData (ProvisionData).
        let provision = WXS
            .split("Value='\"[#SetupExe]\" msi install --json ")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .expect("the Provision action's command line in main.wxs");
        for k in ALL.iter().filter(|k| k.msi && k.name != "PURGE") {
            assert!(
                provision.contains(&format!("\"{0}=[{0}]", k.name)),
                "main.wxs's Provision does not pass {}",
                k.name
            );
        }
        assert!(provision.contains(&format!("\"{MSI_USER_SID}=[UserSID]\"")));
        let uninstall = WXS
            .split("ExeCommand='msi uninstall ")
            .nth(1)
            .expect("the uninstall action's command line in main.wxs");
        assert!(uninstall.contains("\"PURGE=[PURGE]\""));
    }

    #[test]
    fn build_msi_secures_exactly_the_msi_keys() {
        let line = BUILD_MSI
            .lines()
            .find_map(|l| l.strip_prefix("props="))
            .expect("scripts/build-msi's props= line");
        let mut got: Vec<_> = line.split(',').collect();
        let mut want: Vec<_> = ALL.iter().filter(|k| k.msi).map(|k| k.name).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }
}
