//! `wsl.exe`'s stand-in for setup.msi's tests under Wine: the library's [`run`] on
//! wsl.exe's command line, against WSL's keys in the real registry (see the library's
//! doc for what of WSL it reproduces). Windows only: elsewhere it says so and fails.
//!
//! [`run`]: wsl_standin::run

fn main() {
    #[cfg(windows)]
    {
        use std::io::Write as _;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let utf8 = std::env::var("WSL_UTF8").is_ok_and(|v| v == "1");
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        let code = wsl_standin::run(
            &args,
            &mut wsl_standin::hkcu::Hkcu,
            &mut wsl_standin::Out::new(utf8, &mut lock),
        );
        let _ = lock.flush();
        std::process::exit(code);
    }
    #[cfg(not(windows))]
    {
        eprintln!(
            "wsl-standin is a test double of wsl.exe for Windows (setup.msi's tests under Wine); it does nothing here"
        );
        std::process::exit(2);
    }
}
