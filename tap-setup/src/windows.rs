//! The Windows host: one TAP-Windows adapter of the coLinux kit's driver (hardware id
//! `tap0801co`, the id colinux-net-daemon looks for: ../shared/research/colinux-spec.md
//! §4.1), made and removed through SetupAPI, named and addressed through the registry
//! and the IP Helper API (anchors-installers.md §4.1).
//!
//! - Create: a root-enumerated device of class Net with the hardware id, registered
//!   (`DIF_REGISTERDEVICE`), its best compatible driver from the driver store selected
//!   and installed (`DIF_SELECTBESTCOMPATDRV`, `DIF_INSTALLDEVICE`; the driver package
//!   is staged by the driver install), non-interactively; the new connection is named.
//!   A reboot request from the class installer is reported (exit 3010 upstream).
//! - Find: present Net devices whose hardware ids hold `tap0801co`, matched by their
//!   connection name (`NetCfgInstanceId` -> LUID -> alias); another adapter of that name
//!   is reported as not a TAP.
//! - Configure: the `.1/24` address with `CreateUnicastIpAddressEntry` (others removed).
//! - Busy: `GetIpForwardTable2` and `GetUnicastIpAddressTable` (IPv4).
//!
//! Every call that needs an administrator fails with ERROR_ACCESS_DENIED, reported as
//! the missing right `administrator`.
//!
//! ## Limitations
//!
//! Not run in this project's tests (no Windows host); it is type-checked for
//! `x86_64-win7-windows-gnu`. The connection is renamed by writing the `Name` value
//! of its `Connection` key, which the network shell reads at its next refresh.
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::ptr;

use windows_sys::Win32::Devices::DeviceAndDriverInstallation::{
    DI_NEEDREBOOT, DI_NEEDRESTART, DICD_GENERATE_ID, DICS_FLAG_GLOBAL, DIF_INSTALLDEVICE,
    DIF_REGISTERDEVICE, DIF_REMOVE, DIF_SELECTBESTCOMPATDRV, DIGCF_PRESENT, DIREG_DRV,
    GUID_DEVCLASS_NET, HDEVINFO, SP_DEVINFO_DATA, SP_DEVINSTALL_PARAMS_W, SPDIT_COMPATDRIVER,
    SPDRP_HARDWAREID, SetupDiBuildDriverInfoList, SetupDiCallClassInstaller,
    SetupDiCreateDeviceInfoList, SetupDiCreateDeviceInfoW, SetupDiDestroyDeviceInfoList,
    SetupDiEnumDeviceInfo, SetupDiGetClassDevsW, SetupDiGetDeviceInstallParamsW,
    SetupDiGetDeviceRegistryPropertyW, SetupDiOpenDevRegKey, SetupDiSetDeviceRegistryPropertyW,
    SetupSetNonInteractiveMode,
};
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_OBJECT_ALREADY_EXISTS, GetLastError, INVALID_HANDLE_VALUE, NO_ERROR,
    WIN32_ERROR,
};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    ConvertInterfaceAliasToLuid, ConvertInterfaceGuidToLuid, ConvertInterfaceLuidToAlias,
    CreateUnicastIpAddressEntry, DeleteUnicastIpAddressEntry, FreeMibTable, GetIfEntry2,
    GetIpForwardTable2, GetUnicastIpAddressTable, InitializeUnicastIpAddressEntry, MIB_IF_ROW2,
    MIB_IPFORWARD_TABLE2, MIB_UNICASTIPADDRESS_ROW, MIB_UNICASTIPADDRESS_TABLE,
};
use windows_sys::Win32::NetworkManagement::Ndis::{NET_IF_ADMIN_STATUS_UP, NET_LUID_LH};
use windows_sys::Win32::Networking::WinSock::{AF_INET, IpDadStatePreferred};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_READ, KEY_SET_VALUE, REG_SZ, RegCloseKey, RegOpenKeyExW,
    RegQueryValueExW, RegSetValueExW,
};
use windows_sys::core::GUID;

use crate::Error;
use crate::host::{Adapter, Spec, TapHost};
use crate::subnet::{Busy, Prefix, UseKind};

/// The kit's TAP driver's hardware id (coLinux's fork of TAP-Win32).
pub const HARDWARE_ID: &str = "tap0801co";

/// The running Windows host.
#[derive(Debug, Default)]
pub struct WindowsHost;

impl WindowsHost {
    /// The host.
    pub fn new() -> WindowsHost {
        WindowsHost
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn from_wide(w: &[u16]) -> String {
    let end = w.iter().position(|&c| c == 0).unwrap_or(w.len());
    String::from_utf16_lossy(&w[..end])
}

fn win_err(action: String, code: WIN32_ERROR) -> Error {
    let source = std::io::Error::from_raw_os_error(code as i32);
    if code == ERROR_ACCESS_DENIED {
        Error::NoRight {
            right: "administrator".into(),
            action,
            detail: source.to_string(),
        }
    } else {
        Error::Os { op: action, source }
    }
}

fn last_err(action: String) -> Error {
    // SAFETY: GetLastError reads the calling thread's last-error value; no memory.
    win_err(action, unsafe { GetLastError() })
}

/// A device information set, destroyed on drop.
struct DevInfo(HDEVINFO);

impl Drop for DevInfo {
    fn drop(&mut self) {
        // SAFETY: the handle came from SetupDiGetClassDevsW/CreateDeviceInfoList and is
        // destroyed once, here.
        unsafe { SetupDiDestroyDeviceInfoList(self.0) };
    }
}

fn devinfo_data() -> SP_DEVINFO_DATA {
    SP_DEVINFO_DATA {
        cbSize: size_of::<SP_DEVINFO_DATA>() as u32,
        ..Default::default()
    }
}

/// A registry key, closed on drop.
struct Key(HKEY);

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: the key was opened by SetupDiOpenDevRegKey or RegOpenKeyExW.
        unsafe { RegCloseKey(self.0) };
    }
}

fn reg_string(key: &Key, name: &str) -> Option<String> {
    let n = wide(name);
    let mut buf = vec![0u16; 256];
    let mut len = (buf.len() * 2) as u32;
    let mut kind = 0;
    // SAFETY: `buf` holds `len` bytes; the value name is NUL-terminated.
    let rc = unsafe {
        RegQueryValueExW(
            key.0,
            n.as_ptr(),
            ptr::null(),
            &mut kind,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == NO_ERROR && kind == REG_SZ).then(|| from_wide(&buf))
}

/// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` to a GUID.
fn parse_guid(s: &str) -> Option<GUID> {
    let hex: String = s
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|&c| c != '-')
        .collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok().map(GUID::from_u128)
}

/// The TAP adapters of the kit's driver: (device set, device data, connection name, LUID).
struct Found {
    set: std::rc::Rc<DevInfo>,
    data: SP_DEVINFO_DATA,
    name: String,
    luid: NET_LUID_LH,
}

fn tap_devices() -> Result<Vec<Found>, Error> {
    // SAFETY: a class GUID pointer, no enumerator, no window; returns a set or INVALID.
    let set = unsafe {
        SetupDiGetClassDevsW(
            &GUID_DEVCLASS_NET,
            ptr::null(),
            ptr::null_mut(),
            DIGCF_PRESENT,
        )
    };
    if set == INVALID_HANDLE_VALUE as HDEVINFO {
        return Err(last_err("listing the network adapters".into()));
    }
    let set = std::rc::Rc::new(DevInfo(set));
    let mut out = Vec::new();
    for i in 0.. {
        let mut data = devinfo_data();
        // SAFETY: `data.cbSize` is set; the set is valid.
        if unsafe { SetupDiEnumDeviceInfo(set.0, i, &mut data) } == 0 {
            break;
        }
        let mut buf = vec![0u16; 512];
        let mut kind = 0;
        // SAFETY: `buf` holds the byte count passed.
        let ok = unsafe {
            SetupDiGetDeviceRegistryPropertyW(
                set.0,
                &data,
                SPDRP_HARDWAREID,
                &mut kind,
                buf.as_mut_ptr().cast(),
                (buf.len() * 2) as u32,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            continue;
        }
        let ids = String::from_utf16_lossy(&buf);
        if !ids
            .split('\0')
            .any(|id| id.eq_ignore_ascii_case(HARDWARE_ID))
        {
            continue;
        }
        // SAFETY: valid set and data; the returned key is closed by `Key`.
        let key =
            unsafe { SetupDiOpenDevRegKey(set.0, &data, DICS_FLAG_GLOBAL, 0, DIREG_DRV, KEY_READ) };
        if key.is_null() || key == INVALID_HANDLE_VALUE as HKEY {
            continue;
        }
        let key = Key(key);
        let Some(guid) = reg_string(&key, "NetCfgInstanceId").and_then(|g| parse_guid(&g)) else {
            continue;
        };
        let mut luid = NET_LUID_LH::default();
        // SAFETY: both pointers are to live locals.
        if unsafe { ConvertInterfaceGuidToLuid(&guid, &mut luid) } != NO_ERROR {
            continue;
        }
        let mut alias = [0u16; 257];
        // SAFETY: `alias` holds 257 characters, the length passed.
        if unsafe { ConvertInterfaceLuidToAlias(&luid, alias.as_mut_ptr(), alias.len()) }
            != NO_ERROR
        {
            continue;
        }
        out.push(Found {
            set: std::rc::Rc::clone(&set),
            data,
            name: from_wide(&alias),
            luid,
        });
    }
    Ok(out)
}

fn if_row(luid: NET_LUID_LH) -> Option<MIB_IF_ROW2> {
    let mut row = MIB_IF_ROW2 {
        InterfaceLuid: luid,
        ..Default::default()
    };
    // SAFETY: `row` is a live MIB_IF_ROW2 with its LUID set, as GetIfEntry2 requires.
    (unsafe { GetIfEntry2(&mut row) } == NO_ERROR).then_some(row)
}

/// IPv4 unicast addresses: (LUID value, address, prefix length).
fn unicast() -> Result<Vec<(u64, Ipv4Addr, u8, MIB_UNICASTIPADDRESS_ROW)>, Error> {
    let mut table: *mut MIB_UNICASTIPADDRESS_TABLE = ptr::null_mut();
    // SAFETY: the table pointer is filled by the call and freed with FreeMibTable.
    let rc = unsafe { GetUnicastIpAddressTable(AF_INET, &mut table) };
    if rc != NO_ERROR {
        return Err(win_err("listing the host's addresses".into(), rc));
    }
    let mut out = Vec::new();
    // SAFETY: on success `table` points to NumEntries rows laid out after the count.
    unsafe {
        let n = (*table).NumEntries as usize;
        let rows = std::slice::from_raw_parts((*table).Table.as_ptr(), n);
        for r in rows {
            let a = Ipv4Addr::from(u32::from_be(r.Address.Ipv4.sin_addr.S_un.S_addr));
            out.push((r.InterfaceLuid.Value, a, r.OnLinkPrefixLength, *r));
        }
        FreeMibTable(table.cast());
    }
    Ok(out)
}

fn alias_of(luid: u64) -> Option<String> {
    let l = NET_LUID_LH { Value: luid };
    let mut alias = [0u16; 257];
    // SAFETY: `alias` holds the 257 characters passed.
    (unsafe { ConvertInterfaceLuidToAlias(&l, alias.as_mut_ptr(), alias.len()) } == NO_ERROR)
        .then(|| from_wide(&alias))
}

impl TapHost for WindowsHost {
    fn busy(&mut self) -> Result<Vec<Busy>, Error> {
        let mut out = Vec::new();
        for (luid, addr, len, _) in unicast()? {
            out.push(Busy {
                prefix: Prefix { addr, len },
                kind: UseKind::Address,
                dev: alias_of(luid),
            });
        }
        let mut table: *mut MIB_IPFORWARD_TABLE2 = ptr::null_mut();
        // SAFETY: as for the address table.
        let rc = unsafe { GetIpForwardTable2(AF_INET, &mut table) };
        if rc != NO_ERROR {
            return Err(win_err("listing the host's routes".into(), rc));
        }
        // SAFETY: on success `table` points to NumEntries rows; freed once below.
        unsafe {
            let n = (*table).NumEntries as usize;
            for r in std::slice::from_raw_parts((*table).Table.as_ptr(), n) {
                let p = &r.DestinationPrefix;
                if p.PrefixLength == 0 {
                    continue;
                }
                out.push(Busy {
                    prefix: Prefix {
                        addr: Ipv4Addr::from(u32::from_be(p.Prefix.Ipv4.sin_addr.S_un.S_addr)),
                        len: p.PrefixLength,
                    },
                    kind: UseKind::Route,
                    dev: alias_of(r.InterfaceLuid.Value),
                });
            }
            FreeMibTable(table.cast());
        }
        Ok(out)
    }

    fn find(&mut self, name: &str) -> Result<Option<Adapter>, Error> {
        let taps = tap_devices()?;
        let (luid, is_tap) = match taps.iter().find(|f| f.name == name) {
            Some(f) => (f.luid, true),
            None => {
                let w = wide(name);
                let mut luid = NET_LUID_LH::default();
                // SAFETY: a NUL-terminated alias and a live LUID.
                if unsafe { ConvertInterfaceAliasToLuid(w.as_ptr(), &mut luid) } != NO_ERROR {
                    return Ok(None);
                }
                (luid, false)
            }
        };
        // SAFETY: reading the plain-integer view of the LUID union.
        let key = unsafe { luid.Value };
        let row = if_row(luid);
        let addresses = unicast()?
            .into_iter()
            .filter(|(l, ..)| *l == key)
            .map(|(_, addr, len, _)| Prefix { addr, len })
            .collect();
        Ok(Some(Adapter {
            name: name.to_owned(),
            mac: row.as_ref().map(|r| {
                r.PhysicalAddress[..(r.PhysicalAddressLength as usize).min(32)]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }),
            addresses,
            up: row.is_some_and(|r| r.AdminStatus == NET_IF_ADMIN_STATUS_UP),
            owner: None,
            is_tap,
            persistent: true,
        }))
    }

    fn create(&mut self, spec: &Spec) -> Result<bool, Error> {
        let action = format!("creating the TAP adapter {}", spec.name);
        // SAFETY: plain flag.
        unsafe { SetupSetNonInteractiveMode(1) };
        // SAFETY: class GUID pointer and no window.
        let set = unsafe { SetupDiCreateDeviceInfoList(&GUID_DEVCLASS_NET, ptr::null_mut()) };
        if set == INVALID_HANDLE_VALUE as HDEVINFO {
            return Err(last_err(action));
        }
        let set = DevInfo(set);
        let mut data = devinfo_data();
        let class = wide("Net");
        // SAFETY: NUL-terminated class name, GUID and `data` with cbSize set.
        if unsafe {
            SetupDiCreateDeviceInfoW(
                set.0,
                class.as_ptr(),
                &GUID_DEVCLASS_NET,
                ptr::null(),
                ptr::null_mut(),
                DICD_GENERATE_ID,
                &mut data,
            )
        } == 0
        {
            return Err(last_err(action));
        }
        // REG_MULTI_SZ: the id, then an empty string.
        let ids: Vec<u16> = HARDWARE_ID.encode_utf16().chain([0, 0]).collect();
        // SAFETY: the buffer holds the byte count passed.
        if unsafe {
            SetupDiSetDeviceRegistryPropertyW(
                set.0,
                &mut data,
                SPDRP_HARDWAREID,
                ids.as_ptr().cast(),
                (ids.len() * 2) as u32,
            )
        } == 0
        {
            return Err(last_err(action));
        }
        // SAFETY: a device of `set`.
        if unsafe { SetupDiCallClassInstaller(DIF_REGISTERDEVICE, set.0, &data) } == 0 {
            return Err(last_err(action));
        }
        let registered = (|| {
            // SAFETY: as above, for the driver selection and install steps.
            unsafe {
                if SetupDiBuildDriverInfoList(set.0, &mut data, SPDIT_COMPATDRIVER) == 0
                    || SetupDiCallClassInstaller(DIF_SELECTBESTCOMPATDRV, set.0, &data) == 0
                {
                    return Err(Error::NoTapSupport {
                        what: format!(
                            "{action}: no driver for {HARDWARE_ID} is in the driver store; install the kit's TAP driver first (colinux-setup driver install)"
                        ),
                    });
                }
                if SetupDiCallClassInstaller(DIF_INSTALLDEVICE, set.0, &data) == 0 {
                    return Err(last_err(action.clone()));
                }
            }
            Ok(())
        })();
        if let Err(e) = registered {
            // SAFETY: removing the device registered above.
            unsafe { SetupDiCallClassInstaller(DIF_REMOVE, set.0, &data) };
            return Err(e);
        }
        let mut params = SP_DEVINSTALL_PARAMS_W {
            cbSize: size_of::<SP_DEVINSTALL_PARAMS_W>() as u32,
            ..Default::default()
        };
        // SAFETY: `params.cbSize` is set.
        let reboot = unsafe { SetupDiGetDeviceInstallParamsW(set.0, &data, &mut params) } != 0
            && params.Flags & (DI_NEEDREBOOT | DI_NEEDRESTART) != 0;
        // Name the new connection: the newest TAP adapter not yet named `spec.name`.
        // SAFETY: valid set and data; the key is closed by `Key`.
        let key =
            unsafe { SetupDiOpenDevRegKey(set.0, &data, DICS_FLAG_GLOBAL, 0, DIREG_DRV, KEY_READ) };
        if !key.is_null() && key != INVALID_HANDLE_VALUE as HKEY {
            let key = Key(key);
            if let Some(guid) = reg_string(&key, "NetCfgInstanceId") {
                rename(&guid, &spec.name).map_err(|e| {
                    // SAFETY: undoing the device made above.
                    unsafe { SetupDiCallClassInstaller(DIF_REMOVE, set.0, &data) };
                    e
                })?;
            }
        }
        Ok(reboot)
    }

    fn set_owner(&mut self, _name: &str, _owner: Option<u32>) -> Result<(), Error> {
        // TAP-Windows adapters have no owner: any user's colinux-net-daemon may open them.
        Ok(())
    }

    fn configure(&mut self, spec: &Spec) -> Result<(), Error> {
        let f = tap_devices()?
            .into_iter()
            .find(|f| f.name == spec.name)
            .ok_or_else(|| Error::Protocol {
                op: format!("configuring {}", spec.name),
                detail: "the adapter is not there".into(),
            })?;
        // SAFETY: reading the integer view of the LUID union.
        let key = unsafe { f.luid.Value };
        let ours = spec.subnet.host_ip();
        for (l, addr, len, row) in unicast()? {
            if l == key && !(addr == ours && len == 24) {
                // SAFETY: `row` is a row the table returned.
                let rc = unsafe { DeleteUnicastIpAddressEntry(&row) };
                if rc != NO_ERROR {
                    return Err(win_err(
                        format!("removing the old address {addr}/{len} from {}", spec.name),
                        rc,
                    ));
                }
            }
        }
        let mut row = MIB_UNICASTIPADDRESS_ROW::default();
        // SAFETY: initialises a live row.
        unsafe { InitializeUnicastIpAddressEntry(&mut row) };
        row.InterfaceLuid = f.luid;
        row.Address.Ipv4.sin_family = AF_INET;
        row.Address.Ipv4.sin_addr.S_un.S_addr = u32::from(ours).to_be();
        row.OnLinkPrefixLength = 24;
        row.DadState = IpDadStatePreferred;
        // SAFETY: a fully initialised row.
        let rc = unsafe { CreateUnicastIpAddressEntry(&row) };
        if rc != NO_ERROR && rc != ERROR_OBJECT_ALREADY_EXISTS {
            return Err(win_err(
                format!("setting the address {ours}/24 on {}", spec.name),
                rc,
            ));
        }
        Ok(())
    }

    fn delete(&mut self, name: &str) -> Result<(), Error> {
        let Some(f) = tap_devices()?.into_iter().find(|f| f.name == name) else {
            return Ok(());
        };
        // SAFETY: a device of its own set.
        if unsafe { SetupDiCallClassInstaller(DIF_REMOVE, f.set.0, &f.data) } == 0 {
            return Err(last_err(format!("deleting the TAP adapter {name}")));
        }
        Ok(())
    }
}

/// Names the connection of the adapter whose NetCfgInstanceId is `guid`.
fn rename(guid: &str, name: &str) -> Result<(), Error> {
    let action = format!("naming the TAP adapter's connection {name}");
    let path = wide(&format!(
        "SYSTEM\\CurrentControlSet\\Control\\Network\\{{4D36E972-E325-11CE-BFC1-08002BE10318}}\\{guid}\\Connection"
    ));
    let mut key: HKEY = ptr::null_mut();
    // SAFETY: NUL-terminated path, live out pointer.
    let rc = unsafe {
        RegOpenKeyExW(
            HKEY_LOCAL_MACHINE,
            path.as_ptr(),
            0,
            KEY_SET_VALUE,
            &mut key,
        )
    };
    if rc != NO_ERROR {
        return Err(win_err(action, rc));
    }
    let key = Key(key);
    let value = wide("Name");
    let data = wide(name);
    // SAFETY: `data` holds the byte count passed, NUL included.
    let rc = unsafe {
        RegSetValueExW(
            key.0,
            value.as_ptr(),
            0,
            REG_SZ,
            data.as_ptr().cast(),
            (data.len() * 2) as u32,
        )
    };
    if rc != NO_ERROR {
        return Err(win_err(action, rc));
    }
    Ok(())
}
