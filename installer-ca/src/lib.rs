//! setup.msi's dialog bridge: a Windows Installer DLL custom action (type 1, this DLL in
//! the Binary table as `ColinuxSetupCa`, entry point `ColinuxSetupUi`) through which
//! the MSI's dialogs ask colinux-setup itself for a page's recommendations (RAM, image
//! sizes, a free subnet, free space) and for its verdict on the answers.
//!
//! Why it exists: every recommendation and every check comes from the program, never
//! re-implemented in the MSI; but in the UI sequence the program is not installed yet,
//! and an immediate EXE custom action cannot set MSI properties. A DLL custom action can:
//! this one unpacks the program from the MSI's own Binary table, runs it, and turns its
//! answer into properties that the dialogs' conditions and texts then read.
//!
//! The contract (each dialog's `DoAction ColinuxSetupUi` ControlEvent):
//!
//! 1. It reads `UI_PROPERTIES`, a `;`-separated list of property names (the public
//!    answer keys, INSTALLDIR;RAMMB;...), each of those properties, and `UI_PAGE`.
//! 2. It unpacks the program as setup.msi installs it, into a new folder in %TEMP%,
//!    `colinux-setup-ui-<pid>-<counter>`: the Binary row `ColinuxSetupExe` as
//!    `bin\colinux-setup.exe`, and each row `ColinuxSetupAsset.FILE` (the busybox the
//!    built-in root is made from, its applet list) as `assets\FILE`, where the program
//!    looks for them.
//! 3. It runs `<exe> msi ui --page <UI_PAGE> --property KEY=VALUE ...` (one `--property`
//!    per listed name, the value as read, even empty; INSTALLDIR's trailing backslash is
//!    passed as it is, the program strips it), without a console window, stdin null,
//!    stdout and stderr captured, stopped after 60 seconds; then deletes the folder.
//! 4. When the program exits 0 and its stdout is one JSON object whose values are all
//!    strings (`{"RAMMB":"256","UI_ERROR":"",...}`), each member becomes a property
//!    (UI_ERROR is cleared first, unless the program sets it). Otherwise UI_ERROR says
//!    in the user's words what failed, with the program's own words (stderr, trimmed,
//!    at most 1000 characters): "colinux-setup could not check these answers: ...".
//! 5. What it did goes to the installer's log (MsiProcessMessage, INSTALLMESSAGE_INFO).
//! 6. It always returns ERROR_SUCCESS, so the dialog sequence goes on and shows UI_ERROR.
//!
//! The same DLL holds setup.msi's provisioning (`ColinuxSetupProvision`, the deferred
//! custom action `Provision`): it runs the installed program's `msi install --json`
//! with the command line in CustomActionData and shows each step it reports on the
//! progress page (see `provision`).
//!
//! Everything but the Msi* calls is in `bridge` and `provision`, plain Rust unit-tested
//! on Linux too; only `msi` (the Windows Installer API behind the `bridge::Session` and
//! `provision::Installer` traits) and the exported functions are Windows code. On other
//! systems the library is empty.

#[cfg(any(windows, test))]
mod bridge;
#[cfg(windows)]
mod msi;
#[cfg(any(windows, test))]
mod provision;

/// Tests that start processes take turns: a file being written while another thread
/// forks cannot be run (ETXTBSY) until that child has exec'd.
#[cfg(test)]
fn spawn_lock() -> std::sync::MutexGuard<'static, ()> {
    static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SPAWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A panic's message, for the log.
#[cfg(windows)]
fn panic_words(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// The custom action: Windows Installer calls it with the session's handle (type 1,
/// CustomAction.Target `ColinuxSetupUi`). Always returns ERROR_SUCCESS (0); failures
/// are in the property UI_ERROR and the log.
#[cfg(windows)]
#[allow(non_snake_case, unsafe_code)]
// SAFETY: the one exported symbol of this DLL under this name; it takes and returns
// plain integers, as MSI's custom action entry points do.
#[unsafe(no_mangle)]
pub extern "system" fn ColinuxSetupUi(
    hinstall: windows_sys::Win32::System::ApplicationInstallationAndServicing::MSIHANDLE,
) -> u32 {
    use bridge::Session as _;
    let session = msi::Msi(hinstall);
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bridge::bridge(&session, &std::env::temp_dir(), bridge::LIMIT)
    }));
    if let Err(panic) = done {
        let why = panic_words(panic.as_ref());
        let message = bridge::Failure::Panic(why).message();
        let _ = session.set_property("UI_ERROR", &message);
        session.log(&format!("ColinuxSetupUi: {message}"));
    }
    windows_sys::Win32::Foundation::ERROR_SUCCESS
}

/// The provisioning (type 1 + in-script + no impersonation, CustomAction.Target
/// `ColinuxSetupProvision`): runs the command line in CustomActionData and shows its
/// steps. ERROR_SUCCESS when the program exits 0; ERROR_INSTALL_FAILURE otherwise, or
/// when it cannot run, so the install fails and rolls back as with the EXE action.
#[cfg(windows)]
#[allow(non_snake_case, unsafe_code)]
// SAFETY: an exported symbol of this DLL under this name; it takes and returns plain
// integers, as MSI's custom action entry points do.
#[unsafe(no_mangle)]
pub extern "system" fn ColinuxSetupProvision(
    hinstall: windows_sys::Win32::System::ApplicationInstallationAndServicing::MSIHANDLE,
) -> u32 {
    use provision::Installer as _;
    let session = msi::Msi(hinstall);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        provision::provision(&session)
    }))
    .unwrap_or_else(|panic| {
        let why = panic_words(panic.as_ref());
        session.log(&format!(
            "{}: the provisioning failed ({why})",
            provision::ACTION
        ));
        provision::ERROR_INSTALL_FAILURE
    })
}
