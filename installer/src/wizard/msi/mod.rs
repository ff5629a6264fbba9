//! The wizard as setup.msi's own dialogs (Windows Installer's Dialog, Control,
//! ControlEvent, ... tables), for a user who double-clicks setup.msi and never sees a
//! terminal: the same pages in the Blackfin coLinux kit manual's order as the terminal
//! wizard, setting the same public properties a silent install takes.
//!
//! - [`answers`]: `msi ui`, which the dialogs' DLL custom action runs on every Next:
//!   the host's recommended values, the texts of the pages and every validation, from
//!   the plan itself (never re-implemented in the MSI).
//! - [`dialogs`]: the pages, as data: one source for the tables scripts/build-msi adds
//!   to the MSI wixl built ([`idt`]) and for the WiX fragment of a build on Windows
//!   ([`wxs`], wix/ui.wxs).
//!
//! Why tables written by a build step: wixl (msitools 0.101), which builds setup.msi on
//! Linux, cannot express `<UI>`; msitools' msibuild imports tables from .idt files into
//! the MSI wixl wrote. See ARCHITECTURE.md.

pub mod answers;
pub mod dialogs;
pub mod idt;
pub mod wxs;
