//! MSI finds a DLL custom action by the exact name in CustomAction.Target. On 32-bit
//! Windows `extern "system"` is stdcall, whose symbol is decorated (`_ColinuxSetupUi@4`);
//! rustc 1.96's export list already names it plainly (`ColinuxSetupUi`), and
//! `--kill-at` makes MinGW's linker strip any `@N` left, so the export stays plain
//! whatever a toolchain does (installer/tests/cli/msi_ca.rs runs the i686 DLL under
//! 32-bit Wine's msiexec).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "windows" && arch == "x86" && env == "gnu" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--kill-at");
    }
}
