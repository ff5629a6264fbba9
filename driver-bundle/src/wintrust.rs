//! Windows' own opinion of a signed file: `WinVerifyTrust` with
//! `WINTRUST_ACTION_GENERIC_VERIFY_V2`, no UI, no revocation check, cached URLs only
//! (an install may run offline). Windows only.
//!
//! It is consulted in addition to [`crate::authenticode`], never instead: our check
//! decides against the kit's pinned signer; Windows' verdict (trusted, or the HRESULT
//! it refused with, e.g. 0x800B0109 for a root it does not trust) is reported so that a
//! driver Windows itself would refuse to load is visible before it is installed.
#![allow(unsafe_code)]

use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null_mut;

use windows_sys::Win32::Security::WinTrust::{
    WINTRUST_ACTION_GENERIC_VERIFY_V2, WINTRUST_DATA, WINTRUST_DATA_0, WINTRUST_FILE_INFO,
    WTD_CACHE_ONLY_URL_RETRIEVAL, WTD_CHOICE_FILE, WTD_REVOKE_NONE, WTD_STATEACTION_CLOSE,
    WTD_STATEACTION_VERIFY, WTD_UI_NONE, WinVerifyTrust,
};

/// `Ok(())` when Windows trusts the file's signature, else the HRESULT it returned.
pub fn verify(path: &Path) -> Result<(), i32> {
    let wide: Vec<u16> = path
        .as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect();
    let mut file = WINTRUST_FILE_INFO {
        cbStruct: std::mem::size_of::<WINTRUST_FILE_INFO>() as u32,
        pcwszFilePath: wide.as_ptr(),
        hFile: null_mut(),
        pgKnownSubject: null_mut(),
    };
    let mut data = WINTRUST_DATA {
        cbStruct: std::mem::size_of::<WINTRUST_DATA>() as u32,
        pPolicyCallbackData: null_mut(),
        pSIPClientData: null_mut(),
        dwUIChoice: WTD_UI_NONE,
        fdwRevocationChecks: WTD_REVOKE_NONE,
        dwUnionChoice: WTD_CHOICE_FILE,
        Anonymous: WINTRUST_DATA_0 { pFile: &mut file },
        dwStateAction: WTD_STATEACTION_VERIFY,
        hWVTStateData: null_mut(),
        pwszURLReference: null_mut(),
        dwProvFlags: WTD_CACHE_ONLY_URL_RETRIEVAL,
        dwUIContext: 0,
        pSignatureSettings: null_mut(),
    };
    let mut action = WINTRUST_ACTION_GENERIC_VERIFY_V2;
    // SAFETY: data and file are fully initialised and outlive both calls; wide is
    // NUL-terminated; a null window handle means no UI.
    let rc = unsafe {
        WinVerifyTrust(
            null_mut(),
            &mut action,
            (&raw mut data).cast::<core::ffi::c_void>(),
        )
    };
    data.dwStateAction = WTD_STATEACTION_CLOSE;
    // SAFETY: the same structures; CLOSE releases the state the VERIFY call made.
    unsafe {
        WinVerifyTrust(
            null_mut(),
            &mut action,
            (&raw mut data).cast::<core::ffi::c_void>(),
        )
    };
    if rc == 0 { Ok(()) } else { Err(rc) }
}
