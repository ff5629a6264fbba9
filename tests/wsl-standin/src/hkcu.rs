//! WSL's keys in the registry, `HKCU\Software\Microsoft\Windows\CurrentVersion\Lxss`:
//! one subkey `{GUID}` per distribution with the values WSL writes for a disk
//! registered in place, and `DefaultDistribution`.

use winreg::RegKey;
use winreg::enums::HKEY_CURRENT_USER;

use crate::{Distro, LXSS, Registry};

/// HKEY_CURRENT_USER's Lxss key (made when first written).
pub struct Hkcu;

fn lxss() -> std::io::Result<RegKey> {
    RegKey::predef(HKEY_CURRENT_USER)
        .create_subkey(LXSS)
        .map(|(k, _)| k)
}

impl Registry for Hkcu {
    fn distributions(&self) -> Vec<Distro> {
        let Ok(lxss) = RegKey::predef(HKEY_CURRENT_USER).open_subkey(LXSS) else {
            return Vec::new();
        };
        lxss.enum_keys()
            .flatten()
            .filter_map(|guid| {
                let k = lxss.open_subkey(&guid).ok()?;
                Some(Distro {
                    name: k.get_value("DistributionName").ok()?,
                    base_path: k.get_value("BasePath").ok()?,
                    vhd: k
                        .get_value("VhdFileName")
                        .unwrap_or_else(|_| "ext4.vhdx".to_owned()),
                    guid,
                })
            })
            .collect()
    }

    fn default_guid(&self) -> Option<String> {
        RegKey::predef(HKEY_CURRENT_USER)
            .open_subkey(LXSS)
            .ok()?
            .get_value("DefaultDistribution")
            .ok()
    }

    fn add(&mut self, d: &Distro) -> std::io::Result<()> {
        let (k, _) = lxss()?.create_subkey(&d.guid)?;
        k.set_value("DistributionName", &d.name)?;
        k.set_value("BasePath", &d.base_path)?;
        k.set_value("VhdFileName", &d.vhd)?;
        // WSL 2, installed (1), root by default, WSL's default flags.
        k.set_value("Version", &2u32)?;
        k.set_value("State", &1u32)?;
        k.set_value("DefaultUid", &0u32)?;
        k.set_value("Flags", &15u32)
    }

    fn remove(&mut self, guid: &str) -> std::io::Result<()> {
        lxss()?.delete_subkey_all(guid)
    }

    fn set_default(&mut self, guid: Option<&str>) -> std::io::Result<()> {
        let k = lxss()?;
        match guid {
            Some(g) => k.set_value("DefaultDistribution", &g),
            None => match k.delete_value("DefaultDistribution") {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        }
    }
}
