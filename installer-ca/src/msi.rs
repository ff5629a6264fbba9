//! The Windows Installer side of the bridge and the provisioning: the session's
//! properties, the log, the rows of the Binary table (the program and its assets), and
//! the progress page's messages (ACTIONSTART, ACTIONDATA, PROGRESS). Every handle this
//! module opens is a [`Handle`], closed when it goes out of scope, on every path.
#![allow(unsafe_code)]

use crate::bridge::{self, EachRow, Session};
use crate::provision::{self, Bar, Installer};
use std::io;
use windows_sys::Win32::Foundation::{ERROR_MORE_DATA, ERROR_NO_MORE_ITEMS, ERROR_SUCCESS};
use windows_sys::Win32::System::ApplicationInstallationAndServicing::{
    INSTALLMESSAGE, INSTALLMESSAGE_ACTIONDATA, INSTALLMESSAGE_ACTIONSTART, INSTALLMESSAGE_INFO,
    INSTALLMESSAGE_PROGRESS, MSIHANDLE, MsiCloseHandle, MsiCreateRecord, MsiDatabaseOpenViewW,
    MsiGetActiveDatabase, MsiGetPropertyW, MsiProcessMessage, MsiRecordGetStringW,
    MsiRecordReadStream, MsiRecordSetInteger, MsiRecordSetStringW, MsiSetPropertyW, MsiViewExecute,
    MsiViewFetch,
};

/// The installer session the custom action was called with (not ours to close).
pub(crate) struct Msi(pub(crate) MSIHANDLE);

/// An MSI handle this module opened; closed on drop (0: none).
struct Handle(MSIHANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        if self.0 != 0 {
            // SAFETY: the handle was returned by an Msi* call of this module and is
            // closed once, here.
            unsafe { MsiCloseHandle(self.0) };
        }
    }
}

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Field `field` of `record` as a string.
fn record_string(record: &Handle, field: u32) -> io::Result<String> {
    let mut buf = vec![0u16; 128];
    loop {
        let mut len = u32::try_from(buf.len()).map_err(io::Error::other)?;
        // SAFETY: `record` is open; `buf` holds `len` UTF-16 units, which `len` tells
        // MsiRecordGetStringW, and outlives the call.
        let r = unsafe { MsiRecordGetStringW(record.0, field, buf.as_mut_ptr(), &mut len) };
        match r {
            ERROR_SUCCESS => {
                let n = (len as usize).min(buf.len());
                return Ok(String::from_utf16_lossy(&buf[..n]));
            }
            // `len` is the length it needs, without the NUL.
            ERROR_MORE_DATA => {
                let need = (len as usize + 1).max(buf.len() * 2);
                buf.resize(need, 0);
            }
            e => return Err(msi_error("MsiRecordGetString", e)),
        }
    }
}

/// An Msi* error code as an io::Error naming the call.
fn msi_error(call: &str, code: u32) -> io::Error {
    io::Error::other(format!("{call} failed with error {code}"))
}

impl Session for Msi {
    fn property(&self, name: &str) -> Result<String, String> {
        let wname = wide(name);
        let mut buf = vec![0u16; 256];
        loop {
            let mut len = u32::try_from(buf.len()).map_err(|e| e.to_string())?;
            // SAFETY: `wname` is NUL-terminated; `buf` holds `len` UTF-16 units, which
            // `len` tells MsiGetPropertyW, and outlives the call.
            let r = unsafe { MsiGetPropertyW(self.0, wname.as_ptr(), buf.as_mut_ptr(), &mut len) };
            match r {
                ERROR_SUCCESS => {
                    let n = (len as usize).min(buf.len());
                    return Ok(String::from_utf16_lossy(&buf[..n]));
                }
                // `len` is the length it needs, without the NUL.
                ERROR_MORE_DATA => {
                    let need = (len as usize + 1).max(buf.len() * 2);
                    buf.resize(need, 0);
                }
                e => return Err(format!("the property {name} (error {e})")),
            }
        }
    }

    fn set_property(&self, name: &str, value: &str) -> Result<(), String> {
        let (wname, wvalue) = (wide(name), wide(value));
        // SAFETY: both strings are NUL-terminated and outlive the call.
        let r = unsafe { MsiSetPropertyW(self.0, wname.as_ptr(), wvalue.as_ptr()) };
        if r == ERROR_SUCCESS {
            Ok(())
        } else {
            Err(format!("MsiSetProperty failed with error {r}"))
        }
    }

    fn binaries(&self, wanted: &dyn Fn(&str) -> bool, each: &mut EachRow<'_>) -> io::Result<()> {
        // Dropped in reverse order: the view, then the database.
        // SAFETY: the session's handle is valid for the custom action's call.
        let db = Handle(unsafe { MsiGetActiveDatabase(self.0) });
        if db.0 == 0 {
            return Err(io::Error::other("MsiGetActiveDatabase gave no database"));
        }
        let query = wide("SELECT `Name`, `Data` FROM `Binary`");
        let mut view = Handle(0);
        // SAFETY: `query` is NUL-terminated; `view.0` receives the new handle.
        let r = unsafe { MsiDatabaseOpenViewW(db.0, query.as_ptr(), &mut view.0) };
        if r != ERROR_SUCCESS {
            return Err(msi_error("MsiDatabaseOpenView", r));
        }
        // SAFETY: `view` is an open view; 0 is "no parameters".
        let r = unsafe { MsiViewExecute(view.0, 0) };
        if r != ERROR_SUCCESS {
            return Err(msi_error("MsiViewExecute", r));
        }
        loop {
            // Each row's record is closed at the end of its turn.
            let mut record = Handle(0);
            // SAFETY: `view` is executed; `record.0` receives the row's handle.
            let r = unsafe { MsiViewFetch(view.0, &mut record.0) };
            if r == ERROR_NO_MORE_ITEMS {
                return Ok(());
            }
            if r != ERROR_SUCCESS {
                return Err(msi_error("MsiViewFetch", r));
            }
            let name = record_string(&record, 1)?;
            if !wanted(&name) {
                continue;
            }
            each(&name, &mut |buf| {
                let mut n = u32::try_from(buf.len()).map_err(io::Error::other)?;
                // SAFETY: `buf` holds `n` bytes, which `n` tells MsiRecordReadStream;
                // field 2 is the row's Data stream.
                let r = unsafe { MsiRecordReadStream(record.0, 2, buf.as_mut_ptr(), &mut n) };
                if r == ERROR_SUCCESS {
                    Ok(n as usize)
                } else {
                    Err(msi_error("MsiRecordReadStream", r))
                }
            })?;
        }
    }

    fn log(&self, text: &str) {
        self.info(text);
    }
}

/// A field of a message record.
enum Field<'a> {
    /// A string, as it is (field 0, the template, is formatted by the installer).
    Text(&'a str),
    /// An integer.
    Int(i32),
}

impl Msi {
    /// Sends a message of `kind` whose record holds `fields` (field 0 first); what
    /// MsiProcessMessage returns, or None when the record could not be made.
    fn message(&self, kind: INSTALLMESSAGE, fields: &[Field<'_>]) -> Option<i32> {
        let count = u32::try_from(fields.len().saturating_sub(1)).ok()?;
        // SAFETY: no pointers; a new record of `count` fields (and field 0).
        let record = Handle(unsafe { MsiCreateRecord(count) });
        if record.0 == 0 {
            return None;
        }
        for (i, field) in fields.iter().enumerate() {
            let i = u32::try_from(i).ok()?;
            let r = match field {
                Field::Text(t) => {
                    let t = wide(t);
                    // SAFETY: `record` is open; `t` is NUL-terminated and outlives the call.
                    unsafe { MsiRecordSetStringW(record.0, i, t.as_ptr()) }
                }
                // SAFETY: `record` is open; no pointers.
                Field::Int(v) => unsafe { MsiRecordSetInteger(record.0, i, *v) },
            };
            if r != ERROR_SUCCESS {
                return None;
            }
        }
        // SAFETY: the session's and the record's handles are valid.
        Some(unsafe { MsiProcessMessage(self.0, kind, record.0) })
    }

    /// One line in the installer's log, as it is (escaped from its formatting).
    fn info(&self, text: &str) {
        let text = bridge::msi_escape(text);
        let _ = self.message(INSTALLMESSAGE_INFO, &[Field::Text(&text)]);
    }
}

impl Installer for Msi {
    fn action_data(&self) -> Result<String, String> {
        Session::property(self, "CustomActionData")
    }

    fn log(&self, text: &str) {
        self.info(text);
    }

    fn step(&self, text: &str) {
        // ACTIONSTART: field 1 the action, 2 its description (formatted by the
        // installer, so escaped: the progress page's ActionText shows it), 3 the
        // template of its ACTIONDATA messages.
        let description = bridge::msi_escape(text);
        let _ = self.message(
            INSTALLMESSAGE_ACTIONSTART,
            &[
                Field::Text(""),
                Field::Text(provision::ACTION),
                Field::Text(&description),
                Field::Text("[1]"),
            ],
        );
        // ACTIONDATA: the step again, for the log of a silent install and a page's
        // ActionData control (field values are not formatted).
        let _ = self.message(
            INSTALLMESSAGE_ACTIONDATA,
            &[Field::Text(""), Field::Text(text)],
        );
    }

    fn bar(&self, tick: Bar) {
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let fields = match tick {
            // Field 1 = 0 reset: 2 the total, 3 forward (0), 4 executing (0).
            Bar::Reset(total) => [
                Field::Int(0),
                Field::Int(clamp(total)),
                Field::Int(0),
                Field::Int(0),
            ],
            // Field 1 = 2 move: 2 the ticks; 3 and 4 unused.
            Bar::Move(by) => [
                Field::Int(2),
                Field::Int(clamp(by)),
                Field::Int(0),
                Field::Int(0),
            ],
        };
        let mut record = vec![Field::Text("")];
        record.extend(fields);
        let _ = self.message(INSTALLMESSAGE_PROGRESS, &record);
    }
}
